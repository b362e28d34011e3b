/**
 * Words for a refusal, built from the numbers the server sends as fields
 * (the 429 body's `reason` and `retry_after_seconds`, the `Retry-After`
 * header, `metadata.eda_gateway` on the kernel websocket, rate-limit-status'
 * `limits`): the UI never reads numbers out of the server's sentences.
 */
import { formatDuration } from './model';
import { IRateLimitStatus } from './types';

export type Limits = IRateLimitStatus['limits'];

/** "1 min", "90 s": a window length as people say it. */
function windowWords(seconds: number): string {
  return seconds >= 60 && seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
}

/**
 * Which limit refused, e.g. "at most 10 executions per 1 min"; null for a
 * reason this UI does not know (then show the server's message instead).
 */
export function limitWords(reason: string | undefined, limits: Limits | null): string | null {
  switch (reason) {
    case 'per_minute':
      return limits
        ? `at most ${limits.max_executions_per_minute} executions per ${windowWords(limits.window_seconds)}`
        : 'the execution budget of this window is used up';
    case 'per_day':
      return limits && limits.max_executions_per_day > 0
        ? `at most ${limits.max_executions_per_day} executions per 24 h`
        : 'the daily execution quota is used up';
    case 'concurrent':
      return limits
        ? `at most ${limits.max_concurrent_executions} executions at once`
        : 'too many executions are running at once';
    default:
      return null;
  }
}

/** "Retry in 41 s." for a known wait; 0 means "when a running execution ends". */
export function retryWords(seconds: number): string {
  return seconds > 0 ? `Retry in ${formatDuration(Math.ceil(seconds))}.` : 'Retry when a running execution ends.';
}
