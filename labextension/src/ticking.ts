/**
 * The base of widgets that show the shared model: they re-render when it
 * changes and, while attached, once a second so countdowns and durations tick
 * locally between polls.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ResourceModel } from './model';

export abstract class TickingModelWidget extends Widget {
  constructor(model: ResourceModel, options?: Widget.IOptions) {
    super(options);
    this._tickingModel = model;
    model.changed.connect(this.update, this);
    this.update(); // posted: runs after the subclass constructor has built its DOM
  }

  /** Whether the once-a-second tick should re-render now. */
  protected abstract shouldTick(): boolean;

  dispose(): void {
    clearInterval(this._ticker);
    this._tickingModel.changed.disconnect(this.update, this);
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._ticker = setInterval(() => {
      if (this.shouldTick()) {
        this.update();
      }
    }, 1000);
  }

  protected onBeforeDetach(msg: Message): void {
    clearInterval(this._ticker);
    super.onBeforeDetach(msg);
  }

  private _tickingModel: ResourceModel;
  private _ticker: ReturnType<typeof setInterval> | undefined = undefined;
}
