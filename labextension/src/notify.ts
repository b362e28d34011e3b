/**
 * JupyterLab notifications for refusals and stops: what happened, and when
 * the user may run again.
 */
import { Notification } from '@jupyterlab/apputils';

import { formatDuration, ResourceModel } from './model';
import { IVerdict } from './types';

/** "retry in 12 s", "wait 12 seconds", "try again in 12s". */
const RETRY_SECONDS = /(?:retry|wait|again)\D{0,12}?(\d+(?:\.\d+)?)\s*(?:s\b|sec)/i;

/** The text of a notification for one verdict (kept short: toasts are small). */
export function verdictMessage(verdict: IVerdict, retryIn = 0): { message: string; type: Notification.TypeOptions } {
  const detail = verdict.evalue ? ` ${verdict.evalue}` : '';
  switch (verdict.ename) {
    case 'RateLimitExceeded': {
      // The server's words say when; our last snapshot is the fallback.
      const match = RETRY_SECONDS.exec(verdict.evalue);
      const seconds = match ? Number(match[1]) : retryIn;
      const when = match || seconds <= 0 ? '' : ` Retry in ${formatDuration(Math.ceil(seconds))}.`;
      return { message: `Execution refused: rate limit reached.${detail}${when}`, type: 'warning' };
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
    const { message, type } = verdictMessage(verdict, model.retryIn());
    Notification.emit(message, type, {
      autoClose: 10000,
      actions: [{ label: 'Resource Monitor', callback: openMonitor }]
    });
  });
}
