/**
 * The notebook pre-check: while the shared model knows the budget would refuse a cell,
 * running it answers at once (the refusal and the wait, in a notification and the status
 * bar) instead of sending it and waiting for the server's refusal. The server stays the
 * authority: whatever the pre-check lets through, it still admits or refuses.
 *
 * JupyterLab runs cells through one INotebookCellExecutor; this one wraps JupyterLab's own
 * `runCell` (the default executor plugin is disabled in package.json for it). The notebook
 * tracker needs the executor, and the model plugin uses the tracker: so the executor asks
 * for the model when a cell runs (`precheckModel`), not when it is built.
 */
import { INotebookCellExecutor, runCell } from '@jupyterlab/notebook';

import { ResourceModel } from './model';

/** Set by the model plugin once the model exists (index.ts). */
export const precheckModel: { current: ResourceModel | null } = { current: null };

/** Whether the budget, as the model last saw it, would refuse a new cell on `kernelId`. */
export function wouldRefuse(model: ResourceModel, kernelId: string | undefined, now = model.now()): boolean {
  const status = model.status;
  if (!status || !model.isLimited(now)) {
    return false;
  }
  const windowFull = status.remaining === 0 && model.resetIn(now) > 0;
  const dailyFull = !!status.daily && status.daily.remaining === 0;
  if (windowFull || dailyFull) {
    return true;
  }
  // Only the concurrency limit: a cell queued in a kernel that already runs one counts once.
  return !status.active_executions.some(e => e.kernel_id === kernelId);
}

export const precheckedExecutor: INotebookCellExecutor = {
  runCell: async options => {
    const model = precheckModel.current;
    if (model && options.cell.model.type === 'code') {
      const now = model.now();
      if (wouldRefuse(model, options.sessionContext?.session?.kernel?.id, now)) {
        const wait = model.retryIn(now);
        model.reportVerdict({
          ename: 'RateLimitExceeded',
          evalue: 'Not sent: your execution budget is spent.',
          retryAfterSeconds: wait > 0 ? wait : undefined,
          // one notification per second however many cells Run All tried
          key: `precheck:${Math.floor(now / 1000)}`
        });
        return false;
      }
    }
    return runCell(options);
  }
};
