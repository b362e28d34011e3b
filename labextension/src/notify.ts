/**
 * JupyterLab notifications for refusals and stops: what happened, and when
 * the user may run again.
 */
import { Notification } from '@jupyterlab/apputils';

import { ResourceModel } from './model';
import { limitWords, Limits, retryWords } from './refusal';
import { IVerdict } from './types';

/**
 * The text of a notification for one verdict (kept short: toasts are small).
 * `retryIn` (the last snapshot's wait) and `limits` fill in what the verdict
 * itself does not carry.
 */
export function verdictMessage(
  verdict: IVerdict,
  retryIn = 0,
  limits: Limits | null = null
): { message: string; type: Notification.TypeOptions } {
  const detail = verdict.evalue ? ` ${verdict.evalue}` : '';
  switch (verdict.ename) {
    case 'RateLimitExceeded': {
      const seconds = verdict.retryAfterSeconds ?? (retryIn > 0 ? retryIn : null);
      const when = seconds === null ? '' : ` ${retryWords(seconds)}`;
      const which = limitWords(verdict.reason, limits);
      // the cell's output keeps the server's own words
      const why = which === null ? `.${detail}` : ` (${which}).`;
      return { message: `Execution refused: rate limit reached${why}${when}`, type: 'warning' };
    }
    case 'ExecutionTimeout':
      return {
        message: `Execution stopped: time limit.${detail} You can run again now; shorten the work.`,
        type: 'error'
      };
    case 'BackgroundExecutionTimeout':
      return {
        message: `Kernel stopped: busy with no cell running.${detail} Stop threads and long completions.`,
        type: 'error'
      };
    case 'MemoryLimitExceeded':
      return {
        message: `Execution stopped: memory limit.${detail} Kernel variables may be lost; use less memory.`,
        type: 'error'
      };
    default:
      return { message: `${verdict.ename}:${detail}`, type: 'error' };
  }
}

export function notifyVerdicts(model: ResourceModel, enabled: () => boolean, openMonitor: () => void): void {
  model.verdictReported.connect((_, verdict) => {
    if (!enabled()) {
      return;
    }
    const { message, type } = verdictMessage(verdict, model.retryIn(), model.status?.limits ?? null);
    Notification.emit(message, type, {
      autoClose: 10000,
      actions: [{ label: 'Resource Monitor', callback: openMonitor }]
    });
  });
}
