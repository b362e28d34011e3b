/** Tiny DOM helpers: the widgets build plain elements once and update text. */
import { Level, levelOfShare } from './types';

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'class') {
      node.className = value;
    } else {
      node.setAttribute(name, value);
    }
  }
  node.append(...children);
  return node;
}

/** A labelled bar with role=progressbar, so the numbers are read out too. */
export class Meter {
  readonly node: HTMLElement;

  constructor(label: string, testId: string) {
    this._label = h('span', { class: 'eda-Meter-label' }, label);
    this._value = h('span', { class: 'eda-Meter-value' });
    this._fill = h('div', { class: 'eda-Meter-fill' });
    this._bar = h(
      'div',
      { class: 'eda-Meter-bar', role: 'progressbar', 'aria-label': label, 'aria-valuemin': '0' },
      this._fill
    );
    this.node = h(
      'div',
      { class: 'eda-Meter', 'data-testid': testId },
      h('div', { class: 'eda-Meter-text' }, this._label, this._value),
      this._bar
    );
  }

  /** `level` picks the colour; the text always carries the numbers. */
  update(value: number, max: number, text: string, level: string): void {
    const fraction = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
    this._fill.style.width = `${(fraction * 100).toFixed(1)}%`;
    this._value.textContent = text;
    this._bar.setAttribute('aria-valuenow', String(value));
    this._bar.setAttribute('aria-valuemax', String(max));
    this._bar.setAttribute('aria-valuetext', text);
    this.node.dataset.level = level;
  }

  private _label: HTMLElement;
  private _value: HTMLElement;
  private _fill: HTMLElement;
  private _bar: HTMLElement;
}

/** The level of `value` out of `max` (server thresholds, types.ts); used by per-kernel meters. */
export function shareLevel(value: number, max: number): Level {
  return levelOfShare(max > 0 ? value / max : 0);
}
