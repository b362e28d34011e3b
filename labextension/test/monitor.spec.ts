/**
 * The Resource Monitor sidebar (and its compact form) in the DOM: meters,
 * countdowns and durations that tick on the model's clock between polls, the
 * per-user table admins get, and problems said in words.
 */
import { ResourceModel } from '../src/model';
import { ResourceMonitor } from '../src/monitor';
import { attach, FakeClock, FakeServer, kernel, limited, makeModel, refreshed, stats, status, text } from './widgets';

let clock: FakeClock;
let server: FakeServer;
let model: ResourceModel;
let monitor: ResourceMonitor;

function open(options: { compact?: boolean; openRunner?: () => void } = {}): HTMLElement {
  monitor = attach(new ResourceMonitor({ model, ...options }));
  return monitor.node;
}

beforeEach(() => {
  clock = new FakeClock();
  server = new FakeServer();
  model = makeModel(server, clock);
});

afterEach(() => {
  monitor?.dispose();
  model.dispose();
  clock.uninstall();
});

it('shows the budget as labelled meters and the level as a word', async () => {
  const node = open();
  expect(text(node, 'eda-badge')).toBe('Loading…');
  await refreshed(model);
  expect(text(node, 'eda-badge')).toBe('Normal');
  expect(text(node, 'eda-meter-executions')).toBe('Executions in window3 / 10 per 1 min 00 s');
  const bar = node.querySelector('[data-testid=eda-meter-executions] [role=progressbar]')!;
  expect(bar.getAttribute('aria-valuenow')).toBe('3');
  expect(bar.getAttribute('aria-valuemax')).toBe('10');
  expect(text(node, 'eda-meter-concurrent')).toBe('Running now1 / 2');
  expect(text(node, 'eda-remaining')).toBe('7 remaining · resets in 42 s');
  expect((node.querySelector('[data-testid=eda-retry]') as HTMLElement).hidden).toBe(true);
  expect(text(node, 'eda-kernels')).toContain('k1aaaaaa · busy · limit 30 s per run');
  expect(text(node, 'eda-system')).toContain('Server CPU13% of 2 cores');
  expect(text(node, 'eda-system')).toContain('Enforcementcgroup-v1');
});

it('shows the daily quota only when the server has one, and waits for it when it is used up', async () => {
  const node = open();
  await refreshed(model);
  expect((node.querySelector('[data-testid=eda-daily]') as HTMLElement).hidden).toBe(true);
  server.current = status({
    limits: {
      max_executions_per_minute: 10,
      window_seconds: 60,
      max_concurrent_executions: 2,
      max_executions_per_day: 5
    },
    status: 'limited',
    retry_after_seconds: 18720,
    daily: { executions: 5, remaining: 0, reset_in_seconds: 18720 }
  });
  await refreshed(model);
  expect((node.querySelector('[data-testid=eda-daily]') as HTMLElement).hidden).toBe(false);
  expect(text(node, 'eda-daily')).toBe('Today: 5 of 5 · 0 remaining');
  expect(text(node, 'eda-badge')).toBe('Limited');
  expect(text(node, 'eda-retry')).toBe('Limited: you can run again in 5 h 12 min');
});

it('ticks durations up and the reset down on the model clock, without asking the server', async () => {
  const node = open();
  await refreshed(model);
  const requests = server.requests;
  expect(text(node, 'eda-execution-duration')).toBe('2 s');
  expect(text(node, 'eda-session')).toBe('Session: 23 min 00 s');

  await clock.advance(5_000);
  expect(text(node, 'eda-execution-duration')).toBe('7 s');
  expect(text(node, 'eda-session')).toBe('Session: 23 min 05 s');
  expect(text(node, 'eda-remaining')).toBe('7 remaining · resets in 37 s');
  expect(server.requests).toBe(requests);
});

it('does not tick while hidden, and catches up when shown', async () => {
  const node = open();
  await refreshed(model);
  monitor.hide();
  await clock.advance(5_000);
  expect(text(node, 'eda-execution-duration')).toBe('2 s');
  monitor.show();
  await clock.advance(1_000);
  expect(text(node, 'eda-execution-duration')).toBe('8 s');
});

it('counts the retry wait down, then no longer says limited once it is over', async () => {
  const node = open();
  server.current = limited(30);
  await refreshed(model);
  expect(text(node, 'eda-badge')).toBe('Limited');
  expect(text(node, 'eda-retry')).toBe('Limited: you can run again in 30 s');
  await clock.advance(12_000);
  expect(text(node, 'eda-retry')).toBe('Limited: you can run again in 18 s');

  server.current = status({ executions_in_window: 2, remaining: 8 });
  await clock.advance(18_500); // the wait and the model's wake-up margin
  expect((node.querySelector('[data-testid=eda-retry]') as HTMLElement).hidden).toBe(true);
  expect(text(node, 'eda-badge')).toBe('Normal');
  expect(text(node, 'eda-meter-executions')).toContain('2 / 10');
});

it('says to wait for a running execution when every slot is busy', async () => {
  const node = open();
  server.current = status({ status: 'limited', concurrent_executions: 2 });
  await refreshed(model);
  expect(text(node, 'eda-retry')).toBe('Limited: wait for a running execution to finish');
  expect(node.querySelector('[data-testid=eda-meter-concurrent]')!.getAttribute('data-level')).toBe('limited');
});

it('lists nothing running, and no kernels, in words', async () => {
  const node = open();
  server.current = status({ active_executions: [], executions_in_window: 0, concurrent_executions: 0 });
  server.stats = stats([]);
  await refreshed(model);
  expect(text(node, 'eda-active-executions')).toBe('Nothing running');
  expect(text(node, 'eda-kernels')).toBe('No kernels running');
  expect(text(node, 'eda-remaining')).toBe('7 remaining'); // nothing to reset
});

it('shows admins every user, sorted, with their kernels', async () => {
  const node = open();
  server.stats = stats([
    kernel('alice', 'kaaaaaaaaaaa'),
    kernel('carol', 'kccccccccccc', { execution_state: 'busy' }),
    kernel('bob', 'kbbbbbbbbbbb'),
    kernel('bob', 'kbbbbbbbbbb2')
  ]);
  await refreshed(model);
  const rows = [...node.querySelectorAll('[data-testid=eda-user-row]')].map(r =>
    [...r.children].map(c => c.textContent)
  );
  expect(rows).toEqual([
    ['alice', '1', '0', '64.0 MiB', '10%'],
    ['bob', '2', '0', '128 MiB', '20%'],
    ['carol', '1', '1', '64.0 MiB', '10%']
  ]);
  expect(node.querySelectorAll('[data-testid=eda-users] [data-testid=eda-kernel]')).toHaveLength(3);
});

it('keeps the last figures and says why when the server fails', async () => {
  const node = open();
  await refreshed(model);
  server.fail = new Error('HTTP 503');
  await refreshed(model);
  expect(text(node, 'eda-error')).toBe('Monitoring problem: HTTP 503');
  expect(text(node, 'eda-badge')).toBe('Normal');
  server.fail = null;
  await refreshed(model);
  expect((node.querySelector('[data-testid=eda-error]') as HTMLElement).hidden).toBe(true);
});

it('has a compact form with the budget only, and a refresh button', async () => {
  const node = open({ compact: true });
  await refreshed(model);
  expect(node.dataset.testid).toBe('eda-monitor-compact');
  expect(node.querySelector('[data-testid=eda-active-executions]')).toBeNull();
  const requests = server.requests;
  (node.querySelector('button[aria-label="Refresh resource monitor"]') as HTMLButtonElement).click();
  await clock.advance(0);
  await refreshed(model); // lets the click's fetch finish
  expect(server.requests).toBeGreaterThan(requests);
});

it('opens the runner from its footer button when it can', async () => {
  let opened = 0;
  const node = open({ openRunner: () => opened++ });
  const button = [...node.querySelectorAll('button')].find(b => b.textContent === 'Open EDA Runner')!;
  button.click();
  expect(opened).toBe(1);
});

it('shows one row per kernel, named by its notebook, with the cells queued behind it', async () => {
  server.current = status({
    active_executions: [
      { kernel_id: 'k1', source: 'notebook', started_at: '2026-11-28T01:02:05Z', duration_seconds: 0.5 },
      { kernel_id: 'k1', source: 'notebook', started_at: '2026-11-28T01:02:03Z', duration_seconds: 2.5 },
      { kernel_id: 'k1', source: 'notebook', started_at: '2026-11-28T01:02:06Z', duration_seconds: 0 },
      { kernel_id: 'k2', source: 'api', started_at: '2026-11-28T01:02:04Z', duration_seconds: 1.5 }
    ]
  });
  monitor = attach(new ResourceMonitor({ model, nameOf: id => (id === 'k1' ? 'Sales.ipynb' : null) }));
  await refreshed(model);
  const rows = [...monitor.node.querySelectorAll('[data-testid=eda-active-execution]')] as HTMLElement[];
  expect(rows.map(r => r.textContent)).toEqual([
    'Sales.ipynb · notebook · running 2 s, 2 queued',
    'EDA Runner · api · running 1 s'
  ]);
  expect(rows[0].title).toBe('kernel k1');
  expect(rows[0].dataset.queued).toBe('2');
});

it('says which figures are the server-wide ones', async () => {
  const node = open();
  await refreshed(model);
  expect(node.textContent).toContain('This server (all users)');
  expect(text(node, 'eda-system')).toContain('Running executions (all users)');
});

it('names a REST run the EDA Runner made by its dataset', async () => {
  model.labelKernel('k2', 'EDA Runner: sales');
  server.current = status({
    active_executions: [{ kernel_id: 'k2', source: 'api', started_at: '2026-11-28T01:02:04Z', duration_seconds: 1.5 }]
  });
  monitor = attach(new ResourceMonitor({ model, nameOf: id => model.kernelLabel(id) }));
  await refreshed(model);
  expect(text(monitor.node, 'eda-active-execution')).toBe('EDA Runner: sales · api · running 1 s');
});

it('names the kernels an agent ran on by what the server says they are for', async () => {
  // no session and no run from this page: an MCP or REST client ran on alice's dataset kernel
  server.stats = stats([
    kernel('alice', 'k2bbbbbbbbbb', { dataset: 'sales', execution_state: 'busy' }),
    kernel('alice', 'k3cccccccccc', { warm: true })
  ]);
  server.current = status({
    active_executions: [
      { kernel_id: 'k2bbbbbbbbbb', source: 'api', started_at: '2026-11-28T01:02:04Z', duration_seconds: 1.5 }
    ]
  });
  monitor = attach(new ResourceMonitor({ model, nameOf: id => model.kernelLabel(id) }));
  await refreshed(model);
  expect(text(monitor.node, 'eda-active-execution')).toBe('EDA Runner: sales · api · running 1 s');
  const names = [...monitor.node.querySelectorAll('[data-testid=eda-kernel-name]')].map(n => n.textContent);
  expect(names).toEqual(['EDA Runner: sales ', 'Warm kernel (for your next dataset) ']);
});
