/**
 * The status bar item in the DOM (jsdom): counts, the level as a word, and a
 * retry countdown that ticks on the model's clock between polls.
 */
import { ResourceModel } from '../src/model';
import { StatusItem } from '../src/statusbar';
import { attach, FakeClock, FakeServer, limited, makeModel, refreshed, status } from './widgets';

let clock: FakeClock;
let server: FakeServer;
let model: ResourceModel;
let item: StatusItem;
let opened: number;

beforeEach(() => {
  clock = new FakeClock();
  server = new FakeServer();
  model = makeModel(server, clock);
  opened = 0;
  item = attach(new StatusItem(model, () => opened++));
});

afterEach(() => {
  item.dispose();
  model.dispose();
  clock.uninstall();
});

const label = () => item.node.textContent ?? '';

it('says it is loading, then unavailable when the server fails', async () => {
  await clock.advance(0);
  expect(label()).toBe('EDA: …');
  expect(item.node.dataset.level).toBe('unknown');
  server.fail = new Error('HTTP 503');
  await refreshed(model);
  expect(label()).toBe('EDA: unavailable');
  expect(item.node.title).toBe('HTTP 503');
});

it('shows executions and running of their limits, and the level as a word', async () => {
  server.current = status({ status: 'medium', executions_in_window: 6, remaining: 4 });
  await refreshed(model);
  expect(label()).toBe('Exec 6/10 · Running 1/2 · Medium');
  expect(item.node.dataset.level).toBe('medium');
  expect(item.node.getAttribute('aria-label')).toBe(
    'Executions: 6 of 10 per 1 min 00 s, 4 remaining. Running: 1 of 2. Status: Medium. Open the Resource Monitor.'
  );
});

it('says how much of the daily quota is used, when there is one', async () => {
  server.current = status({
    limits: {
      max_executions_per_minute: 10,
      window_seconds: 60,
      max_concurrent_executions: 2,
      max_executions_per_day: 100
    },
    daily: { executions: 42, remaining: 58, reset_in_seconds: 3600 }
  });
  await refreshed(model);
  expect(item.node.getAttribute('aria-label')).toContain('Running: 1 of 2. Today: 42 of 100, 58 remaining. Status:');
  expect(item.node.title).toContain('Today: 42 of 100');
});

it('counts the retry wait down on the model clock, without asking the server', async () => {
  server.current = limited(30);
  await refreshed(model);
  expect(label()).toBe('Exec 10/10 · Running 1/2 · Limited (30 s)');
  expect(item.node.getAttribute('aria-label')).toContain('Run again in 30 s.');
  const requests = server.requests;

  await clock.advance(10_000);
  expect(label()).toBe('Exec 10/10 · Running 1/2 · Limited (20 s)');
  await clock.advance(9_500);
  expect(label()).toContain('Limited (11 s)'); // 10.5 s left, rounded up
  expect(server.requests).toBe(requests);
});

it('asks the server again the moment the wait runs out, and shows its answer', async () => {
  server.current = limited(5);
  await refreshed(model);
  const requests = server.requests;
  server.current = status({ executions_in_window: 9, remaining: 1, status: 'high' });
  await clock.advance(5_500); // the wait, the model's 100 ms margin and its debounce
  expect(server.requests).toBe(requests + 1);
  expect(label()).toBe('Exec 9/10 · Running 1/2 · High');
  expect(item.node.dataset.level).toBe('high');
});

it('stays limited, without a countdown, while every slot is busy', async () => {
  server.current = status({ status: 'limited', concurrent_executions: 2 });
  await refreshed(model);
  await clock.advance(3_000);
  expect(label()).toBe('Exec 3/10 · Running 2/2 · Limited');
});

it('opens the Resource Monitor when pressed', async () => {
  await refreshed(model);
  item.node.click();
  expect(opened).toBe(1);
});
