/** The admin endpoints (docs/admin.md): who uses what now, and usage over time. */
import { requestAPI } from '../api';

export interface IAdminKernel {
  kernel_id: string;
  name: string | null;
  execution_state: string | null;
  connections: number;
  last_activity: string | null;
  memory_bytes: number | null;
  cpu_percent: number | null;
}

export interface IAdminUser {
  user: string;
  admin: boolean;
  groups: string[];
  kernels: IAdminKernel[];
  kernel_count: number;
  memory_bytes: number | null;
  cpu_percent: number | null;
  executions_in_window: number;
  concurrent_executions: number;
  status: string;
  executions: number;
  refusals: Record<string, number>;
  verdicts: Record<string, number>;
  last_activity: string | null;
  limits: Record<string, number>;
}

export interface IAdminUsers {
  since: string;
  until: string;
  users: IAdminUser[];
}

export interface IHistoryPoint {
  start: string;
  executions: number;
  refusals: number;
  verdicts: number;
  peak_memory_bytes: number | null;
  cpu_percent: number | null;
  peak_cpu_percent: number | null;
  kernels: number | null;
}

export interface IHistory {
  since: string;
  until: string;
  bucket_seconds: number;
  users: Array<{
    user: string;
    totals: { executions: number; refusals: Record<string, number>; verdicts: Record<string, number> };
    points: IHistoryPoint[];
  }>;
}

export function fetchAdminUsers(): Promise<IAdminUsers> {
  return requestAPI<IAdminUsers>('admin/users');
}

/** The last `minutes` minutes in one-minute buckets: executions per minute. */
export function fetchHistory(minutes = 60, nowMs = Date.now()): Promise<IHistory> {
  const since = Math.floor(nowMs / 1000) - minutes * 60;
  return requestAPI<IHistory>(`admin/history?bucket=1m&since=${since}`);
}
