/**
 * The compact status bar item: executions used of the limit, running of the
 * concurrent limit, and the level as a word (colour is only a second cue).
 */
import { Message } from '@lumino/messaging';

import { h } from './dom';
import { dailyWords, formatDuration, ResourceModel } from './model';
import { LEVEL_LABELS } from './monitor';
import { TickingModelWidget } from './ticking';

export class StatusItem extends TickingModelWidget {
  constructor(model: ResourceModel, open: () => void) {
    super(model, { node: h('button', { type: 'button' }) });
    this._model = model;
    this.addClass('eda-StatusItem');
    this.node.setAttribute('data-testid', 'eda-status-item');
    this.node.addEventListener('click', open);
  }

  protected shouldTick(): boolean {
    return this._model.isLimited(); // the retry countdown in the label
  }

  protected onUpdateRequest(msg: Message): void {
    super.onUpdateRequest(msg);
    const status = this._model.status;
    if (!status) {
      this.node.textContent = this._model.error ? 'EDA: unavailable' : 'EDA: …';
      this.node.dataset.level = 'unknown';
      this.node.title = this._model.error ?? 'Loading execution budget';
      return;
    }
    const limited = this._model.isLimited();
    const level = limited ? 'limited' : this._model.level!;
    const label = LEVEL_LABELS[level] ?? level;
    const retry = this._model.retryIn();
    const text =
      `Exec ${status.executions_in_window}/${status.limits.max_executions_per_minute}` +
      ` · Running ${status.concurrent_executions}/${status.limits.max_concurrent_executions}` +
      ` · ${label}` +
      (limited && retry > 0 ? ` (${Math.ceil(retry)} s)` : '');
    this.node.replaceChildren(h('span', { class: 'eda-StatusItem-dot', 'aria-hidden': 'true' }), text);
    this.node.dataset.level = level;
    const description =
      `Executions: ${status.executions_in_window} of ${status.limits.max_executions_per_minute} ` +
      `per ${formatDuration(status.limits.window_seconds)}, ${status.remaining} remaining. ` +
      `Running: ${status.concurrent_executions} of ${status.limits.max_concurrent_executions}. ` +
      (status.daily ? `${dailyWords(status)}, ${status.daily.remaining} remaining. ` : '') +
      `Status: ${label}.` +
      (limited && retry > 0 ? ` Run again in ${formatDuration(Math.ceil(retry))}.` : '') +
      ' Open the Resource Monitor.';
    this.node.title = description;
    this.node.setAttribute('aria-label', description);
  }

  private _model: ResourceModel;
}
