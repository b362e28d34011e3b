/**
 * Friendly names for the JSON shapes of the eda_gateway REST API. The shapes
 * themselves are generated from eda_gateway/openapi.json into api-types.ts
 * (`jlpm gen:types`); docs/rest_api.md explains them. The UI only reads
 * these; it never computes limits itself.
 */
import type * as nbformat from '@jupyterlab/nbformat';

import { components, LEVEL_THRESHOLDS } from './api-types';

type Schemas = components['schemas'];

export type Level = Schemas['Level'];

export const LEVELS: ReadonlyArray<Level> = ['normal', 'medium', 'high', 'limited'];

export { LEVEL_THRESHOLDS };

/**
 * The level of a share of a budget (0: none used, 1: all of it), with the
 * server's thresholds. For what the server does not rate itself (per-kernel
 * memory and CPU, concurrency); the caller's own level is `status` of
 * rate-limit-status.
 */
export function levelOfShare(share: number): Level {
  if (share >= 1) {
    return 'limited';
  }
  return share < LEVEL_THRESHOLDS.medium ? 'normal' : share < LEVEL_THRESHOLDS.high ? 'medium' : 'high';
}

/**
 * rate-limit-status. `status` is widened to any word: a newer server may send
 * a level this UI does not know (levelOf in model.ts falls back to counts).
 */
export type IRateLimitStatus = Omit<Schemas['RateLimitStatus'], 'status'> & { status: Level | string };

export type IActiveExecution = Schemas['RateLimitStatus']['active_executions'][number];

export type ISystemStats = Schemas['SystemStats'];

export type IKernelStats = ISystemStats['kernels'][number];

export type IDataset = Schemas['DatasetList']['datasets'][number];

/** The 429 body of execute-custom-code. */
export type IRateLimited = Schemas['RateLimited'];

/** nbformat v4 output, kept loose: rendermime validates what it renders. */
export type NbOutput = nbformat.IOutput;

export type IExecuteResult = Omit<Schemas['ExecuteResult'], 'outputs'> & { outputs: NbOutput[] };

/** `metadata.eda_gateway` of the messages that end a refused or stopped execution. */
export type IVerdictMetadata = Schemas['VerdictMetadata'];

/** A refusal or stop the server reported for one execution. */
export interface IVerdict {
  ename: 'RateLimitExceeded' | 'ExecutionTimeout' | 'MemoryLimitExceeded' | string;
  evalue: string;
  kernelId?: string;
  /** Which limit refused it (`RateLimited.reason`), when the server said. */
  reason?: string;
  /** Seconds until the budget admits an execution again, when the server said. */
  retryAfterSeconds?: number;
  /** Identifies the execution so one verdict is reported once. */
  key: string;
}

export const VERDICT_NAMES = new Set([
  'RateLimitExceeded',
  'ExecutionTimeout',
  'BackgroundExecutionTimeout',
  'MemoryLimitExceeded'
]);
