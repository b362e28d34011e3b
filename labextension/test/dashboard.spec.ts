/**
 * The admin dashboard in the DOM: the sortable per-user table, kernel actions,
 * the charts, and its polling on the dashboard's clock.
 */
jest.mock('@jupyterlab/apputils', () => ({
  showDialog: jest.fn(),
  Dialog: {
    cancelButton: () => ({ label: 'Cancel', accept: false }),
    warnButton: (o: { label: string }) => ({ label: o.label, accept: true })
  }
}));
jest.mock('@jupyterlab/services', () => ({
  KernelAPI: { interruptKernel: jest.fn(), restartKernel: jest.fn(), shutdownKernel: jest.fn() }
}));
jest.mock('../src/admin/api', () => ({ fetchAdminUsers: jest.fn(), fetchHistory: jest.fn() }));

import { showDialog } from '@jupyterlab/apputils';
import { KernelAPI } from '@jupyterlab/services';

import { fetchAdminUsers, fetchHistory, IAdminUser, IHistory } from '../src/admin/api';
import { AdminDashboard } from '../src/admin/dashboard';
import { attach, EPOCH, FakeClock, text } from './widgets';

const users = fetchAdminUsers as jest.MockedFunction<typeof fetchAdminUsers>;
const history = fetchHistory as jest.MockedFunction<typeof fetchHistory>;
const dialog = showDialog as jest.MockedFunction<typeof showDialog>;

function user(name: string, overrides: Partial<IAdminUser> = {}): IAdminUser {
  return {
    user: name,
    admin: false,
    groups: ['staff'],
    kernels: [],
    kernel_count: 0,
    memory_bytes: null,
    cpu_percent: null,
    executions_in_window: 0,
    concurrent_executions: 0,
    status: 'normal',
    executions: 0,
    refusals: {},
    verdicts: {},
    last_activity: null,
    limits: { max_executions_per_minute: 10 },
    servers: ['east'],
    ...overrides
  };
}

const KERNEL = {
  kernel_id: 'kaaaaaaaaaaaa',
  name: 'python3',
  execution_state: 'idle',
  connections: 1,
  last_activity: null,
  memory_bytes: 1,
  cpu_percent: 0,
  dataset: null,
  warm: false
};

function point(minute: number, executions: number, memory: number | null) {
  return {
    start: new Date(EPOCH + minute * 60_000).toISOString(),
    executions,
    refusals: 0,
    verdicts: 0,
    peak_memory_bytes: memory,
    cpu_percent: null,
    peak_cpu_percent: null,
    kernels: null
  };
}

function usage(): IHistory {
  const totals = { executions: 0, refusals: {}, verdicts: {} };
  const servers = ['east'];
  return {
    since: '',
    until: '',
    bucket_seconds: 60,
    users: [
      { user: 'alice', totals, points: [point(0, 1, 2 ** 20), point(1, 3, 2 ** 21), point(2, 0, null)], servers },
      { user: 'bob', totals, points: [point(0, 0, null), point(1, 2, null), point(2, 0, null)], servers }
    ]
  };
}

let clock: FakeClock;
let dashboard: AdminDashboard;

beforeEach(() => {
  clock = new FakeClock();
  users.mockResolvedValue({
    since: '',
    until: '',
    users: [
      user('carol', { executions: 5, refusals: { rate_limit: 2 } }),
      user('alice', { executions: 9, kernels: [KERNEL], kernel_count: 1, memory_bytes: 2 ** 20 }),
      user('bob', { executions: 1, admin: true })
    ]
  });
  history.mockResolvedValue(usage());
});

afterEach(() => {
  dashboard?.dispose();
  clock.uninstall();
  jest.clearAllMocks();
});

async function open(): Promise<HTMLElement> {
  dashboard = attach(new AdminDashboard({ now: clock.now }));
  await clock.advance(0); // the poll's first load
  return dashboard.node;
}

const rowUsers = (node: HTMLElement) =>
  [...node.querySelectorAll('[data-testid=eda-admin-row]')].map(r => r.getAttribute('data-user'));

it('lists every user, sorted by name, and the last hour on its own clock', async () => {
  const node = await open();
  expect(rowUsers(node)).toEqual(['alice', 'bob', 'carol']);
  expect(node.querySelector('[data-user=bob] th')!.textContent).toBe('bob (admin)');
  const carol = [...node.querySelectorAll('[data-user=carol] td')].map(c => c.textContent);
  expect(carol.slice(0, 7)).toEqual(['0', '-', '-', '0 / 10', '5', '2', '0']);
  expect(history).toHaveBeenCalledWith(60, EPOCH);
  expect(node.querySelector('.eda-Admin-status')!.textContent).toBe(`Updated ${new Date(EPOCH).toLocaleTimeString()}`);
});

it('sorts by a column, descending first, and back', async () => {
  const node = await open();
  const header = () => node.querySelector('th[data-key=executions]')!;
  (header().querySelector('button') as HTMLButtonElement).click();
  expect(header().getAttribute('aria-sort')).toBe('descending');
  expect(rowUsers(node)).toEqual(['alice', 'carol', 'bob']);
  (header().querySelector('button') as HTMLButtonElement).click();
  expect(header().getAttribute('aria-sort')).toBe('ascending');
  expect(rowUsers(node)).toEqual(['bob', 'carol', 'alice']);
});

it('polls again every 15 s of its clock', async () => {
  const node = await open();
  expect(users).toHaveBeenCalledTimes(1);
  await clock.advance(14_000);
  expect(users).toHaveBeenCalledTimes(1);
  await clock.advance(1_000);
  expect(users).toHaveBeenCalledTimes(2);
  expect(history).toHaveBeenLastCalledWith(60, EPOCH + 15_000);
  expect(node.querySelector('.eda-Admin-status')!.textContent).toBe(
    `Updated ${new Date(EPOCH + 15_000).toLocaleTimeString()}`
  );
});

it('interrupts a kernel at once, and asks before shutting one down', async () => {
  const node = await open();
  const action = (name: string) => node.querySelector(`[data-user=alice] [data-action="${name}"]`) as HTMLButtonElement;
  action('Interrupt').click();
  await clock.advance(0);
  expect(KernelAPI.interruptKernel).toHaveBeenCalledWith(KERNEL.kernel_id);
  expect(users).toHaveBeenCalledTimes(2); // and reloads

  dialog.mockResolvedValue({ button: { accept: false } } as any);
  action('Shut down').click();
  await clock.advance(0);
  expect(dialog).toHaveBeenCalledTimes(1);
  expect(KernelAPI.shutdownKernel).not.toHaveBeenCalled();

  dialog.mockResolvedValue({ button: { accept: true } } as any);
  action('Shut down').click();
  await clock.advance(0);
  expect(KernelAPI.shutdownKernel).toHaveBeenCalledWith(KERNEL.kernel_id);
});

it('charts a line per user, and memory only for users with samples', async () => {
  const node = await open();
  const lines = (id: string) =>
    [...node.querySelectorAll(`[data-testid=${id}] path.eda-AdminChart-line`)].map(p => p.getAttribute('data-user'));
  expect(lines('eda-admin-chart-executions')).toEqual(['alice', 'bob']);
  expect(lines('eda-admin-chart-memory')).toEqual(['alice']);
  // a bucket without a sample breaks the line rather than drawing zero
  const memory = node.querySelector('[data-testid=eda-admin-chart-memory] path')!.getAttribute('d')!;
  expect(memory.match(/[ML]/g)).toEqual(['M', 'L']);
});

it('says so when it cannot load, and keeps polling', async () => {
  users.mockRejectedValue(new Error('HTTP 403'));
  const node = await open();
  expect(text(node.parentElement!, 'eda-admin-dashboard')).toContain('Could not load: HTTP 403');
  await clock.advance(15_000); // backs off, but tries again
  expect(users.mock.calls.length).toBeGreaterThan(1);
});

it('lists the other servers on the shared store with their kernels, each server linked', async () => {
  users.mockResolvedValue({
    since: '',
    until: '',
    users: [user('alice')],
    servers: [
      {
        server: 'east',
        url: 'http://east:8888/',
        published_at: new Date(EPOCH).toISOString(),
        this_server: true,
        kernels: []
      },
      {
        server: 'west',
        url: 'http://west:8888/',
        published_at: new Date(EPOCH).toISOString(),
        this_server: false,
        kernels: [
          { kernel_id: 'kwwwwwwwwwww', user: 'bob', memory_bytes: 2 ** 20, cpu_percent: 12.4, execution_state: 'busy' }
        ]
      }
    ]
  });
  const node = await open();
  const servers = [...node.querySelectorAll('[data-testid=eda-admin-server]')];
  expect(servers.map(s => s.getAttribute('data-server'))).toEqual(['west']); // not this one
  expect(servers[0].querySelector('a')!.getAttribute('href')).toBe('http://west:8888/');
  const kernel = node.querySelector('[data-testid=eda-admin-server-kernel]')!;
  expect([...kernel.querySelectorAll('td')].map(c => c.textContent)).toEqual([
    'bob',
    'kwwwwwww',
    'busy',
    '1.0 MiB',
    '12%'
  ]);
});

it('shows no servers section without a shared store', async () => {
  const node = await open();
  expect(node.querySelector('[data-testid=eda-admin-servers]')!.children.length).toBe(0);
});

it('names a kernel by its notebook where a session says, its id on hover', async () => {
  dashboard = attach(
    new AdminDashboard({ now: clock.now, nameOf: id => (id === KERNEL.kernel_id ? 'Sales.ipynb' : null) })
  );
  await clock.advance(0);
  const kernel = dashboard.node.querySelector(`[data-kernel=${KERNEL.kernel_id}] span`)!;
  expect(kernel.textContent).toBe('Sales.ipynb');
  expect(kernel.getAttribute('title')).toBe(`kernel ${KERNEL.kernel_id}`);
});

it('names a dataset kernel without a session by its dataset', async () => {
  users.mockResolvedValue({
    since: '',
    until: '',
    users: [user('alice', { kernels: [{ ...KERNEL, dataset: 'sales' }], kernel_count: 1 })]
  });
  dashboard = attach(new AdminDashboard({ now: clock.now, nameOf: () => null }));
  await clock.advance(0);
  expect(dashboard.node.querySelector(`[data-kernel=${KERNEL.kernel_id}] span`)!.textContent).toBe('EDA Runner: sales');
});
