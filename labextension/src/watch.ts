/**
 * Hear the user's kernels: refresh the model when an execution starts or
 * ends, and report refusals/stops (RateLimitExceeded, ExecutionTimeout,
 * MemoryLimitExceeded) that reach a notebook or console.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { KernelMessage } from '@jupyterlab/services';

import { ResourceModel } from './model';
import { IVerdict, IVerdictMetadata, VERDICT_NAMES } from './types';

/** Anything with a session context: notebook panels, console panels. */
export interface ISessionWidgetTracker {
  forEach(fn: (widget: { sessionContext: ISessionContext }) => void): void;
  widgetAdded: {
    connect(fn: (sender: unknown, widget: { sessionContext: ISessionContext }) => void): unknown;
  };
}

export function watchTracker(model: ResourceModel, tracker: ISessionWidgetTracker): void {
  tracker.forEach(widget => watchSessionContext(model, widget.sessionContext));
  tracker.widgetAdded.connect((_, widget) => watchSessionContext(model, widget.sessionContext));
}

export function watchSessionContext(model: ResourceModel, context: ISessionContext): void {
  const onMessage = (_: ISessionContext, msg: KernelMessage.IMessage): void => {
    const parent = msg.parent_header as Partial<KernelMessage.IHeader>;
    if (parent?.msg_type !== 'execute_request') {
      return; // completions, inspections, comm traffic: not executions
    }
    if (msg.header.msg_type === 'status') {
      // busy = admitted or refused, idle = finished: the counts changed either way
      model.refreshSoon();
    } else if (msg.header.msg_type === 'error') {
      const content = msg.content as KernelMessage.IErrorMsg['content'];
      if (VERDICT_NAMES.has(content.ename)) {
        model.reportVerdict({
          ename: content.ename,
          evalue: content.evalue,
          kernelId: context.session?.kernel?.id,
          ...verdictDetails(msg.metadata),
          key: `${parent.msg_id ?? msg.header.msg_id}:${content.ename}`
        });
      }
    }
  };
  context.iopubMessage.connect(onMessage);
  context.disposed.connect(() => context.iopubMessage.disconnect(onMessage));
}

/**
 * What the server put in the error's `metadata.eda_gateway` (openapi.json,
 * VerdictMetadata): numbers travel there, never only in `evalue`'s words.
 */
export function verdictDetails(metadata: unknown): Pick<IVerdict, 'reason' | 'retryAfterSeconds'> {
  const details = (metadata as { eda_gateway?: Partial<IVerdictMetadata> } | null)?.eda_gateway;
  const found: Pick<IVerdict, 'reason' | 'retryAfterSeconds'> = {};
  if (typeof details?.reason === 'string') {
    found.reason = details.reason;
  }
  if (typeof details?.retry_after_seconds === 'number' && Number.isFinite(details.retry_after_seconds)) {
    found.retryAfterSeconds = Math.max(0, details.retry_after_seconds);
  }
  return found;
}
