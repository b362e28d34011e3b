/**
 * What the user calls a kernel: the notebook (or console) its session opened, as
 * JupyterLab's session manager lists them. One answer for the monitor, the admin dashboard
 * and the Running panel.
 */
import { Session } from '@jupyterlab/services';

/** The path of the session running `kernelId`, or null when no session says. */
export function sessionPathOf(sessions: Session.IManager, kernelId: string): string | null {
  for (const session of sessions.running()) {
    if (session.kernel?.id === kernelId) {
      return session.path;
    }
  }
  return null;
}

/** A document's file name (`Sales.ipynb` of `reports/Sales.ipynb`). */
export function fileName(path: string): string {
  return path.split('/').pop() || path;
}

/** The file name of that session's document, or null. */
export function sessionNameOf(sessions: Session.IManager, kernelId: string): string | null {
  const path = sessionPathOf(sessions, kernelId);
  return path === null ? null : fileName(path);
}

/** What the server says a kernel is for, when no session names it: the execution API's
 * dataset kernel (the EDA Runner, REST and MCP runs on that dataset share it), or a warm one. */
export function kernelPurpose(kernel: { dataset: string | null; warm: boolean }): string | null {
  if (kernel.dataset !== null) {
    return `EDA Runner: ${kernel.dataset}`;
  }
  return kernel.warm ? 'Warm kernel (for your next dataset)' : null;
}
