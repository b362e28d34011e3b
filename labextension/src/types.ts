/**
 * JSON shapes of the eda_gateway REST API (eda_gateway/openapi.json,
 * docs/rest_api.md). The UI only reads these; it never computes limits itself.
 */

export type Level = 'normal' | 'medium' | 'high' | 'limited';

export const LEVELS: ReadonlyArray<Level> = ['normal', 'medium', 'high', 'limited'];

export interface IActiveExecution {
  kernel_id: string;
  source: 'notebook' | 'api' | string;
  started_at: string;
  duration_seconds: number;
}

export interface IRateLimitStatus {
  user: string;
  limits: {
    max_executions_per_minute: number;
    window_seconds: number;
    max_concurrent_executions: number;
  };
  executions_in_window: number;
  remaining: number;
  concurrent_executions: number;
  retry_after_seconds: number;
  reset_in_seconds: number;
  status: Level | string;
  active_executions: IActiveExecution[];
  session: { started_at: string | null; duration_seconds: number } | null;
}

export interface IKernelStats {
  kernel_id: string;
  user: string;
  pid: number | null;
  memory_bytes: number;
  cpu_percent: number;
  execution_state: string;
  limits: { memory_bytes: number; cpu_percent: number; execution_seconds: number };
}

export interface ISystemStats {
  cpu: { percent: number; count: number };
  memory: { total: number; used: number; available: number; percent: number };
  active_users: number;
  active_kernels: number;
  active_executions: number;
  enforcement: string;
  sampled_at: string;
  kernels: IKernelStats[];
}

export interface IDataset {
  id: string;
  description?: string;
}

/** nbformat v4 output, kept loose: rendermime validates what it renders. */
export type NbOutput = import("@jupyterlab/nbformat").IOutput;

export interface IExecuteResult {
  status: 'ok' | 'error';
  execution_count: number | null;
  outputs: NbOutput[];
  error: { ename: string; evalue: string; traceback: string[] } | null;
  duration_seconds: number;
  kernel_id: string;
}

/** A refusal or stop the server reported for one execution. */
export interface IVerdict {
  ename: 'RateLimitExceeded' | 'ExecutionTimeout' | 'MemoryLimitExceeded' | string;
  evalue: string;
  kernelId?: string;
  /** Identifies the execution so one verdict is reported once. */
  key: string;
}

export const VERDICT_NAMES = new Set([
  'RateLimitExceeded',
  'ExecutionTimeout',
  'BackgroundExecutionTimeout',
  'MemoryLimitExceeded'
]);
