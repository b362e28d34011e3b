/**
 * The admin endpoints (docs/admin.md): who uses what now, and usage over time.
 * Their shapes are generated from eda_gateway/openapi.json (../api-types.ts).
 */
import { requestAPI } from '../api';
import { components } from '../api-types';

type Schemas = components['schemas'];

export type IAdminUsers = Schemas['AdminUsers'];

export type IAdminUser = IAdminUsers['users'][number];

export type IAdminKernel = IAdminUser['kernels'][number];
export type IAdminServer = NonNullable<IAdminUsers['servers']>[number];

export type IHistory = Schemas['History'];

export type IHistoryPoint = IHistory['users'][number]['points'][number];

export function fetchAdminUsers(): Promise<IAdminUsers> {
  return requestAPI<IAdminUsers>('admin/users');
}

/** The last `minutes` minutes in one-minute buckets: executions per minute. */
export function fetchHistory(minutes = 60, nowMs = Date.now()): Promise<IHistory> {
  const since = Math.floor(nowMs / 1000) - minutes * 60;
  return requestAPI<IHistory>(`admin/history?bucket=1m&since=${since}`);
}
