/**
 * The Resource Monitor: the full dashboard (sidebar) or its compact form
 * (on top of the EDA Runner). It only renders the shared model.
 */
import { Message } from '@lumino/messaging';

import { h, Meter, shareLevel } from './dom';
import { dailyWords, formatBytes, formatDuration, ResourceModel } from './model';
import { TickingModelWidget } from './ticking';
import { IActiveExecution, IKernelStats } from './types';

export const LEVEL_LABELS: Record<string, string> = {
  normal: 'Normal',
  medium: 'Medium',
  high: 'High',
  limited: 'Limited'
};

export interface IMonitorOptions {
  model: ResourceModel;
  compact?: boolean;
  /** Shown as a button in the full view when given. */
  openRunner?: () => void;
  /** What the user calls a kernel: its notebook's (or console's) name, when a session says. */
  nameOf?: (kernelId: string) => string | null;
}

export class ResourceMonitor extends TickingModelWidget {
  constructor(options: IMonitorOptions) {
    super(options.model);
    this._model = options.model;
    this._compact = !!options.compact;
    this._nameOf = options.nameOf ?? (() => null);
    this.addClass('eda-Monitor');
    this.toggleClass('eda-Monitor-compact', this._compact);
    this.node.setAttribute('data-testid', this._compact ? 'eda-monitor-compact' : 'eda-monitor');

    this._badge = h('span', { class: 'eda-Badge', 'data-testid': 'eda-badge', role: 'status' });
    const refresh = h(
      'button',
      { class: 'eda-Button', type: 'button', title: 'Refresh now', 'aria-label': 'Refresh resource monitor' },
      'Refresh'
    );
    refresh.addEventListener('click', () => void this._model.refresh());
    const title = this._compact ? 'My execution budget' : 'Resource Monitor';
    const header = h('div', { class: 'eda-Monitor-header' }, h('h2', {}, title), this._badge, refresh);

    this._executions = new Meter('Executions in window', 'eda-meter-executions');
    this._concurrent = new Meter('Running now', 'eda-meter-concurrent');
    this._remaining = h('div', { class: 'eda-Monitor-line', 'data-testid': 'eda-remaining' });
    this._daily = h('div', { class: 'eda-Monitor-line', 'data-testid': 'eda-daily' });
    this._retry = h('div', {
      class: 'eda-Monitor-line eda-Monitor-retry',
      'data-testid': 'eda-retry',
      role: 'alert'
    });
    this._error = h('div', { class: 'eda-Monitor-error', 'data-testid': 'eda-error', role: 'alert' });
    this.node.append(
      header,
      this._executions.node,
      this._concurrent.node,
      this._remaining,
      this._daily,
      this._retry,
      this._error
    );

    if (!this._compact) {
      this._active = h('ul', { class: 'eda-List', 'data-testid': 'eda-active-executions' });
      this._session = h('div', { class: 'eda-Monitor-line', 'data-testid': 'eda-session' });
      this._kernels = h('div', { class: 'eda-Kernels', 'data-testid': 'eda-kernels' });
      this._users = h('div', { class: 'eda-Users', 'data-testid': 'eda-users' });
      this._system = h('dl', { class: 'eda-System', 'data-testid': 'eda-system' });
      this._details = h(
        'details',
        { class: 'eda-Details', 'data-testid': 'eda-details' },
        h('summary', {}, 'Details: your kernels and this server'),
        h('h3', {}, 'Your kernels'),
        this._kernels,
        this._users,
        h('h3', {}, 'This server (all users)'),
        this._system
      );
      this._details.open = true;
      this.node.append(h('h3', {}, 'Your executions'), this._active, this._session, this._details);
      if (options.openRunner) {
        const runner = h('button', { class: 'eda-Button', type: 'button' }, 'Open EDA Runner');
        runner.addEventListener('click', options.openRunner);
        this.node.append(h('div', { class: 'eda-Monitor-footer' }, runner));
      }
    }
  }

  protected shouldTick(): boolean {
    return this.isVisible; // countdowns and durations tick locally between polls
  }

  protected onUpdateRequest(msg: Message): void {
    super.onUpdateRequest(msg);
    this._render();
  }

  private _render(): void {
    const model = this._model;
    const status = model.status;
    const now = model.now();
    this._error.textContent = model.error ? `Monitoring problem: ${model.error}` : '';
    this._error.hidden = !model.error;
    if (!status) {
      this._badge.textContent = model.error ? 'Unavailable' : 'Loading…';
      this._badge.dataset.level = 'unknown';
      this._retry.hidden = true;
      return;
    }
    const level = model.isLimited(now) ? 'limited' : model.level!;
    this._badge.textContent = LEVEL_LABELS[level] ?? level;
    this._badge.dataset.level = level;
    this.node.dataset.level = level;

    const { max_executions_per_minute: max, max_concurrent_executions: maxConc, window_seconds } = status.limits;
    this._executions.update(
      status.executions_in_window,
      max,
      `${status.executions_in_window} / ${max} per ${formatDuration(window_seconds)}`,
      level
    );
    this._concurrent.update(
      status.concurrent_executions,
      maxConc,
      `${status.concurrent_executions} / ${maxConc}`,
      shareLevel(status.concurrent_executions, maxConc)
    );
    const resetIn = model.resetIn(now);
    this._remaining.textContent =
      `${status.remaining} remaining` +
      (status.executions_in_window > 0 ? ` · resets in ${formatDuration(Math.ceil(resetIn))}` : '');
    // the daily quota, when the server has one: a rolling 24 h
    const daily = dailyWords(status);
    this._daily.hidden = daily === null;
    this._daily.textContent = daily === null ? '' : `${daily} · ${status.daily!.remaining} remaining`;
    const retryIn = model.retryIn(now);
    this._retry.hidden = !model.isLimited(now);
    this._retry.textContent =
      retryIn > 0
        ? `Limited: you can run again in ${formatDuration(Math.ceil(retryIn))}`
        : 'Limited: wait for a running execution to finish';

    if (this._compact) {
      return;
    }
    this._renderActive(now);
    const session = model.sessionDuration(now);
    this._session!.textContent = session === null ? '' : `Session: ${formatDuration(session)}`;
    this._renderKernels();
    this._renderSystem();
  }

  private _renderActive(now: number): void {
    const list = this._active!;
    // One row per kernel, named as the user knows it: what it runs now, and the cells queued
    // behind it ("Run All" of 20 cells is one row, "19 queued").
    const byKernel = new Map<string, IActiveExecution[]>();
    for (const e of this._model.status?.active_executions ?? []) {
      byKernel.set(e.kernel_id, [...(byKernel.get(e.kernel_id) ?? []), e]);
    }
    const rows = [...byKernel.entries()].map(([kernelId, group]) => {
      const head = group.reduce((a, b) => (Date.parse(a.started_at) <= Date.parse(b.started_at) ? a : b));
      const queued = group.length - 1;
      const name = this._nameOf(kernelId) ?? (head.source === 'api' ? 'EDA Runner' : `kernel ${shortId(kernelId)}`);
      return h(
        'li',
        {
          class: 'eda-Execution',
          'data-testid': 'eda-active-execution',
          'data-kernel': kernelId,
          'data-queued': String(queued),
          title: `kernel ${kernelId}`
        },
        h('span', { class: 'eda-Execution-name' }, name),
        ` · ${head.source} · running `,
        h(
          'span',
          { class: 'eda-Duration', 'data-testid': 'eda-execution-duration' },
          formatDuration(this._model.durationOf(head, now))
        ),
        queued ? h('span', { class: 'eda-Queued', 'data-testid': 'eda-queued' }, `, ${queued} queued`) : ''
      );
    });
    list.replaceChildren(...(rows.length ? rows : [h('li', { class: 'eda-Empty' }, 'Nothing running')]));
  }

  private _renderKernels(): void {
    const stats = this._model.stats;
    const me = this._model.status?.user;
    const kernels = stats?.kernels ?? [];
    const mine = kernels.filter(k => k.user === me);
    const others = kernels.filter(k => k.user !== me);
    const rows = mine.map(k => kernelRow(k, this._nameOf(k.kernel_id), false));
    this._kernels!.replaceChildren(...(rows.length ? rows : [h('div', { class: 'eda-Empty' }, 'No kernels running')]));
    // Only admins are sent other users' kernels: show them per user.
    if (!others.length) {
      this._users!.replaceChildren();
      return;
    }
    const byUser = new Map<string, IKernelStats[]>();
    for (const k of kernels) {
      byUser.set(k.user, [...(byUser.get(k.user) ?? []), k]);
    }
    const table = h(
      'table',
      { class: 'eda-Table', 'data-testid': 'eda-users-table' },
      h('caption', {}, 'All users (admin)'),
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'User'),
        h('th', { scope: 'col' }, 'Kernels'),
        h('th', { scope: 'col' }, 'Busy'),
        h('th', { scope: 'col' }, 'Memory'),
        h('th', { scope: 'col' }, 'CPU')
      ),
      ...[...byUser.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([user, ks]) =>
          h(
            'tr',
            { 'data-testid': 'eda-user-row' },
            h('th', { scope: 'row' }, user),
            h('td', {}, String(ks.length)),
            h('td', {}, String(ks.filter(k => k.execution_state === 'busy').length)),
            h('td', {}, formatBytes(ks.reduce((s, k) => s + k.memory_bytes, 0))),
            h('td', {}, `${ks.reduce((s, k) => s + k.cpu_percent, 0).toFixed(0)}%`)
          )
        )
    );
    this._users!.replaceChildren(table, ...others.map(k => kernelRow(k, this._nameOf(k.kernel_id), true)));
  }

  private _renderSystem(): void {
    const stats = this._model.stats;
    if (!stats) {
      this._system!.replaceChildren(h('dd', {}, 'No server figures yet'));
      return;
    }
    const items: Array<[string, string]> = [
      ['Server CPU', `${stats.cpu.percent.toFixed(0)}% of ${stats.cpu.count} cores`],
      [
        'Server memory',
        `${formatBytes(stats.memory.used)} / ${formatBytes(stats.memory.total)} (${stats.memory.percent.toFixed(0)}%)`
      ],
      ['Active users', String(stats.active_users)],
      ['Active kernels (all users)', String(stats.active_kernels)],
      ['Running executions (all users)', String(stats.active_executions)],
      ['Enforcement', stats.enforcement],
      ['Updated', new Date(this._model.takenAt).toLocaleTimeString()]
    ];
    this._system!.replaceChildren(...items.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
  }

  private _model: ResourceModel;
  private _compact: boolean;
  private _nameOf: (kernelId: string) => string | null;
  private _badge: HTMLElement;
  private _executions: Meter;
  private _concurrent: Meter;
  private _remaining: HTMLElement;
  private _daily: HTMLElement;
  private _retry: HTMLElement;
  private _error: HTMLElement;
  private _active: HTMLElement | null = null;
  private _session: HTMLElement | null = null;
  private _kernels: HTMLElement | null = null;
  private _users: HTMLElement | null = null;
  private _system: HTMLElement | null = null;
  private _details: HTMLDetailsElement | null = null;
}

function shortId(id: string): string {
  return id.slice(0, 8);
}

/** A kernel's usage: its name (notebook, EDA Runner dataset, ...) if known, its id always. */
function kernelRow(k: IKernelStats, name: string | null, showUser: boolean): HTMLElement {
  const memory = new Meter('Memory', 'eda-kernel-memory');
  memory.update(
    k.memory_bytes,
    k.limits.memory_bytes,
    `${formatBytes(k.memory_bytes)} / ${formatBytes(k.limits.memory_bytes)}`,
    shareLevel(k.memory_bytes, k.limits.memory_bytes)
  );
  const cpu = new Meter('CPU', 'eda-kernel-cpu');
  cpu.update(
    k.cpu_percent,
    k.limits.cpu_percent,
    `${k.cpu_percent.toFixed(0)}% / ${k.limits.cpu_percent}%`,
    shareLevel(k.cpu_percent, k.limits.cpu_percent)
  );
  return h(
    'div',
    { class: 'eda-Kernel', 'data-testid': 'eda-kernel' },
    h(
      'div',
      { class: 'eda-Kernel-title' },
      name ? h('span', { class: 'eda-Kernel-name', 'data-testid': 'eda-kernel-name' }, `${name} `) : '',
      h('span', { class: 'eda-Mono' }, shortId(k.kernel_id)),
      showUser ? ` · ${k.user}` : '',
      ` · ${k.execution_state}`,
      ` · limit ${formatDuration(k.limits.execution_seconds)} per run`
    ),
    memory.node,
    cpu.node
  );
}
