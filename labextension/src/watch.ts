/**
 * Hear the user's kernels: refresh the model when an execution starts or
 * ends, and report refusals/stops (RateLimitExceeded, ExecutionTimeout,
 * MemoryLimitExceeded) that reach a notebook or console.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { KernelMessage } from '@jupyterlab/services';

import { ResourceModel } from './model';
import { VERDICT_NAMES } from './types';

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
          key: `${parent.msg_id ?? msg.header.msg_id}:${content.ename}`
        });
      }
    }
  };
  context.iopubMessage.connect(onMessage);
  context.disposed.connect(() => context.iopubMessage.disconnect(onMessage));
}
