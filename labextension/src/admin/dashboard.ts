/**
 * The admin dashboard: a sortable per-user table with kernel actions, and charts
 * of executions per minute and memory per user over the last hour.
 */
import { showDialog, Dialog } from '@jupyterlab/apputils';
import { KernelAPI } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { h } from '../dom';
import { formatBytes } from '../model';
import { kernelPurpose } from '../sessions';
import { fetchAdminUsers, fetchHistory, IAdminKernel, IAdminServer, IAdminUser, IHistory } from './api';
import { lineChart, paletteColour } from './chart';

type SortKey =
  | 'user'
  | 'kernel_count'
  | 'memory_bytes'
  | 'cpu_percent'
  | 'executions_in_window'
  | 'executions'
  | 'refusals'
  | 'verdicts'
  | 'last_activity';

const COLUMNS: Array<[SortKey, string]> = [
  ['user', 'User'],
  ['kernel_count', 'Kernels'],
  ['memory_bytes', 'Memory'],
  ['cpu_percent', 'CPU'],
  ['executions_in_window', 'In window'],
  ['executions', 'Executions (24 h)'],
  ['refusals', 'Refusals'],
  ['verdicts', 'Verdicts'],
  ['last_activity', 'Last activity']
];

/** formatBytes of the shared model, with "-" for an unknown size. */
function formatSize(bytes: number | null): string {
  return bytes === null ? '-' : formatBytes(bytes);
}

function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

function byReason(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  return entries.length ? entries.map(([k, v]) => `${k}: ${v}`).join(', ') : '';
}

function sortValue(user: IAdminUser, key: SortKey): number | string {
  switch (key) {
    case 'user':
      return user.user;
    case 'refusals':
    case 'verdicts':
      return total(user[key]);
    case 'last_activity':
      return user.last_activity ? Date.parse(user.last_activity) : 0;
    default:
      return user[key] ?? -1;
  }
}

export interface IAdminDashboardOptions {
  /** Wall clock in ms (tests move it by hand). */
  now?: () => number;
  /** What a kernel is called: its notebook's (or console's) name, when a session says. */
  nameOf?: (kernelId: string) => string | null;
}

export class AdminDashboard extends Widget {
  constructor(options: IAdminDashboardOptions = {}) {
    super();
    this._now = options.now ?? (() => Date.now());
    this._nameOf = options.nameOf ?? (() => null);
    this.addClass('eda-Admin');
    this.node.dataset.testid = 'eda-admin-dashboard';
    this._status = h('div', { class: 'eda-Admin-status', role: 'status' });
    const refresh = h('button', { class: 'eda-Button', type: 'button' }, 'Refresh');
    refresh.addEventListener('click', () => void this._poll.refresh());
    this._table = h('table', { class: 'eda-Table eda-Admin-table', 'data-testid': 'eda-admin-table' });
    this._charts = h('div', { class: 'eda-Admin-charts' });
    this._servers = h('div', { class: 'eda-Admin-servers', 'data-testid': 'eda-admin-servers' });
    this.node.append(
      h('div', { class: 'eda-Admin-header' }, h('h2', {}, 'Users and kernels'), refresh, this._status),
      this._table,
      this._servers,
      h('h2', {}, 'Last hour'),
      this._charts
    );
    this._poll = new Poll({
      factory: () => this._load(),
      frequency: { interval: 15000, backoff: true, max: 300000 },
      name: 'eda-gateway:admin',
      standby: 'when-hidden'
    });
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  /** Load now (also used after a kernel action). */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  private async _load(): Promise<void> {
    try {
      const [users, history] = await Promise.all([fetchAdminUsers(), fetchHistory(60, this._now())]);
      this._users = users.users;
      this._renderServers(users.servers ?? []);
      this._status.textContent = `Updated ${new Date(this._now()).toLocaleTimeString()}`;
      this._renderTable();
      this._renderCharts(history);
    } catch (error) {
      this._status.textContent = `Could not load: ${(error as Error).message}`;
      throw error;
    }
  }

  private _sortBy(key: SortKey): void {
    this._descending = this._sortKey === key ? !this._descending : key !== 'user';
    this._sortKey = key;
    this._renderTable();
  }

  private _renderTable(): void {
    const dir = this._descending ? -1 : 1;
    const users = [...this._users].sort((a, b) => {
      const va = sortValue(a, this._sortKey);
      const vb = sortValue(b, this._sortKey);
      const order = typeof va === 'string' ? va.localeCompare(String(vb)) : (va as number) - (vb as number);
      return order * dir || a.user.localeCompare(b.user);
    });
    const header = h(
      'tr',
      {},
      ...COLUMNS.map(([key, label]) => {
        const sorted = key === this._sortKey;
        const button = h('button', { class: 'eda-Admin-sort', type: 'button' }, label);
        button.addEventListener('click', () => this._sortBy(key));
        return h(
          'th',
          {
            scope: 'col',
            'data-key': key,
            'aria-sort': sorted ? (this._descending ? 'descending' : 'ascending') : 'none'
          },
          button
        );
      }),
      h('th', { scope: 'col' }, 'Kernel actions')
    );
    const rows = users.map(u =>
      h(
        'tr',
        { 'data-testid': 'eda-admin-row', 'data-user': u.user, 'data-status': u.status },
        h('th', { scope: 'row', title: u.groups.join(', ') }, u.user + (u.admin ? ' (admin)' : '')),
        h('td', {}, String(u.kernel_count)),
        h('td', {}, formatSize(u.memory_bytes)),
        h('td', {}, u.cpu_percent === null ? '-' : `${u.cpu_percent.toFixed(0)}%`),
        h(
          'td',
          { title: `status: ${u.status}` },
          `${u.executions_in_window} / ${u.limits.max_executions_per_minute ?? '?'}`
        ),
        h('td', {}, String(u.executions)),
        h('td', { title: byReason(u.refusals) }, String(total(u.refusals))),
        h('td', { title: byReason(u.verdicts) }, String(total(u.verdicts))),
        h('td', {}, u.last_activity ? new Date(u.last_activity).toLocaleString() : '-'),
        h('td', {}, this._kernelActions(u.kernels))
      )
    );
    const empty = users.length
      ? []
      : [h('tr', {}, h('td', { colspan: String(COLUMNS.length + 1), class: 'eda-Empty' }, 'No activity yet'))];
    this._table.replaceChildren(h('thead', {}, header), h('tbody', {}, ...rows, ...empty));
  }

  private _kernelActions(kernels: IAdminKernel[]): HTMLElement {
    const list = h('ul', { class: 'eda-Admin-kernels' });
    for (const k of kernels) {
      const act = (label: string, run: () => Promise<unknown>, confirm = false): HTMLElement => {
        const button = h(
          'button',
          { class: 'eda-Button eda-Admin-action', type: 'button', 'data-action': label },
          label
        );
        button.addEventListener('click', async () => {
          if (confirm) {
            const answer = await showDialog({
              title: `${label} kernel ${k.kernel_id.slice(0, 8)}?`,
              body: 'Its owner loses the kernel state.',
              buttons: [Dialog.cancelButton(), Dialog.warnButton({ label })]
            });
            if (!answer.button.accept) {
              return;
            }
          }
          button.setAttribute('disabled', '');
          try {
            await run();
          } catch (error) {
            this._status.textContent = `${label} failed: ${(error as Error).message}`;
          }
          await this.refresh();
        });
        return button;
      };
      const name = this._nameOf(k.kernel_id) ?? kernelPurpose(k);
      list.append(
        h(
          'li',
          { 'data-kernel': k.kernel_id },
          h('span', { class: name ? '' : 'eda-Mono', title: `kernel ${k.kernel_id}` }, name ?? k.kernel_id.slice(0, 8)),
          ` ${k.execution_state ?? ''} `,
          act('Interrupt', () => KernelAPI.interruptKernel(k.kernel_id)),
          act('Restart', () => KernelAPI.restartKernel(k.kernel_id), true),
          act('Shut down', () => KernelAPI.shutdownKernel(k.kernel_id), true)
        )
      );
    }
    return list;
  }

  /** The other servers on the shared admission store (docs/scaling.md): their live kernels,
   * each server linked: its kernels' actions are taken there. */
  private _renderServers(servers: IAdminServer[]): void {
    const others = servers.filter(s => !s.this_server);
    if (!others.length) {
      this._servers.replaceChildren();
      return;
    }
    const rows = others.flatMap(server => {
      const link = h('a', { href: server.url, target: '_blank', rel: 'noopener' }, server.server);
      const seen = new Date(server.published_at).toLocaleTimeString();
      const kernels = server.kernels.length
        ? server.kernels.map(k =>
            h(
              'tr',
              { 'data-testid': 'eda-admin-server-kernel', 'data-server': server.server, 'data-kernel': k.kernel_id },
              h('td', {}, k.user),
              h('td', { class: 'eda-Mono', title: k.kernel_id }, k.kernel_id.slice(0, 8)),
              h('td', {}, k.execution_state),
              h('td', {}, formatSize(k.memory_bytes)),
              h('td', {}, `${k.cpu_percent.toFixed(0)}%`)
            )
          )
        : [h('tr', {}, h('td', { colspan: '5', class: 'eda-Empty' }, 'No kernels'))];
      return [
        h(
          'tr',
          { 'data-testid': 'eda-admin-server', 'data-server': server.server },
          h('th', { colspan: '5', scope: 'rowgroup' }, link, ` (as of ${seen}; act on its kernels there)`)
        ),
        ...kernels
      ];
    });
    const header = h(
      'tr',
      {},
      ...['User', 'Kernel', 'State', 'Memory', 'CPU'].map(label => h('th', { scope: 'col' }, label))
    );
    this._servers.replaceChildren(
      h('h2', {}, 'Other servers on the shared store'),
      h('table', { class: 'eda-Table' }, h('thead', {}, header), h('tbody', {}, ...rows))
    );
  }

  private _renderCharts(history: IHistory): void {
    const first = history.users[0]?.points ?? [];
    // one colour per user in both charts
    const colours = new Map(history.users.map((u, i) => [u.user, paletteColour(i)]));
    const times = first.map(p => Date.parse(p.start));
    const executions = lineChart({
      title: 'Executions per minute',
      testId: 'eda-admin-chart-executions',
      times,
      series: history.users.map(u => ({
        name: u.user,
        colour: colours.get(u.user)!,
        values: u.points.map(p => p.executions)
      })),
      format: v => String(Math.round(v))
    });
    const memory = lineChart({
      title: 'Peak memory per user',
      testId: 'eda-admin-chart-memory',
      times,
      series: history.users
        .filter(u => u.points.some(p => p.peak_memory_bytes !== null))
        .map(u => ({ name: u.user, colour: colours.get(u.user)!, values: u.points.map(p => p.peak_memory_bytes) })),
      format: v => formatSize(v)
    });
    this._charts.replaceChildren(executions, memory);
  }

  private _now: () => number;
  private _nameOf: (kernelId: string) => string | null;
  private _poll: Poll;
  private _users: IAdminUser[] = [];
  private _sortKey: SortKey = 'user';
  private _descending = false;
  private _status: HTMLElement;
  private _table: HTMLTableElement;
  private _charts: HTMLElement;
  private _servers: HTMLElement;
}
