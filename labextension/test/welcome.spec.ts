/**
 * The launcher's welcome: the user's limits in words, from the shared model.
 */
import { ResourceModel } from '../src/model';
import { welcomeLabel } from '../src/welcome';
import { FakeClock, FakeServer, makeModel, refreshed } from './widgets';

let clock: FakeClock;
let model: ResourceModel;

beforeEach(() => {
  clock = new FakeClock();
  model = makeModel(new FakeServer(), clock);
});

afterEach(() => {
  model.dispose();
  clock.uninstall();
});

it('says loading until the first snapshot, then the budget and the kernel limits', async () => {
  expect(welcomeLabel(model)).toBe('Your limits (loading…)');
  await refreshed(model);
  const label = welcomeLabel(model);
  expect(label).toMatch(/^Welcome, alice\. Your limits: 10 runs per 1 min( 00 s)? · 2 at once/);
  expect(label).toContain('per run');
});
