/**
 * The notebook pre-check's question: would the budget, as the model last saw it, refuse a
 * new cell on this kernel?
 */
jest.mock('@jupyterlab/notebook', () => ({ runCell: jest.fn() }));

import { ResourceModel } from '../src/model';
import { wouldRefuse } from '../src/precheck';
import { FakeClock, FakeServer, limited, makeModel, refreshed, status } from './widgets';

let clock: FakeClock;
let server: FakeServer;
let model: ResourceModel;

beforeEach(() => {
  clock = new FakeClock();
  server = new FakeServer();
  model = makeModel(server, clock);
});

afterEach(() => {
  model.dispose();
  clock.uninstall();
});

it('lets cells through while the budget has room', async () => {
  await refreshed(model);
  expect(wouldRefuse(model, 'k1')).toBe(false);
});

it('refuses while the window is full, and lets through once its wait is over', async () => {
  server.current = limited(20);
  await refreshed(model);
  expect(wouldRefuse(model, 'k1')).toBe(true);
  expect(wouldRefuse(model, 'k1', model.now() + 21_000)).toBe(false);
});

it('under the concurrency limit only, a cell queued in a kernel that runs one passes', async () => {
  server.current = status({
    status: 'limited',
    remaining: 5,
    retry_after_seconds: 0,
    concurrent_executions: 2,
    active_executions: [
      { kernel_id: 'k1', source: 'notebook', started_at: '2026-11-28T01:02:03Z', duration_seconds: 1 },
      { kernel_id: 'k2', source: 'notebook', started_at: '2026-11-28T01:02:03Z', duration_seconds: 1 }
    ]
  });
  await refreshed(model);
  expect(wouldRefuse(model, 'k1')).toBe(false);
  expect(wouldRefuse(model, 'k3')).toBe(true);
});
