/**
 * Helpers for the widget tests (jsdom): snapshots the server would send, a
 * fake server, and one fake clock that moves both the model's time and the
 * timers (jest's), so a countdown on screen can be checked second by second.
 *
 * `Date` is deliberately not faked: a widget that read `Date.now()` instead of
 * the model's clock would show a frozen countdown and fail these tests.
 */
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ResourceModel } from '../src/model';
import { IRateLimitStatus, ISystemStats } from '../src/types';

/** 2020-01-01T00:00:00Z: far from the real time on purpose (see above). */
export const EPOCH = Date.UTC(2020, 0, 1);

export function status(overrides: Partial<IRateLimitStatus> = {}): IRateLimitStatus {
  return {
    user: 'alice',
    limits: {
      max_executions_per_minute: 10,
      window_seconds: 60,
      max_concurrent_executions: 2,
      max_executions_per_day: 0
    },
    executions_in_window: 3,
    remaining: 7,
    concurrent_executions: 1,
    retry_after_seconds: 0,
    reset_in_seconds: 41.2,
    status: 'normal',
    daily: null,
    active_executions: [
      { kernel_id: 'k1aaaaaaaaaa', source: 'notebook', started_at: '2019-12-31T23:59:57Z', duration_seconds: 2.5 }
    ],
    session: { started_at: '2019-12-31T23:37:00Z', duration_seconds: 1380 },
    disk: null,
    ...overrides
  };
}

/** A snapshot of the limit reached: `retry` seconds to wait. */
export function limited(retry: number, overrides: Partial<IRateLimitStatus> = {}): IRateLimitStatus {
  return status({
    status: 'limited',
    executions_in_window: 10,
    remaining: 0,
    retry_after_seconds: retry,
    reset_in_seconds: retry,
    ...overrides
  });
}

export function kernel(user: string, id: string, overrides: Partial<ISystemStats['kernels'][0]> = {}) {
  return {
    kernel_id: id,
    user,
    pid: 1,
    memory_bytes: 64 * 1024 * 1024,
    cpu_percent: 10,
    execution_state: 'idle',
    limits: { memory_bytes: 512 * 1024 * 1024, cpu_percent: 100, execution_seconds: 30 },
    dataset: null,
    warm: false,
    ...overrides
  };
}

export function stats(kernels = [kernel('alice', 'k1aaaaaaaaaa', { execution_state: 'busy' })]): ISystemStats {
  return {
    cpu: { percent: 12.5, count: 2 },
    memory: { total: 4 * 2 ** 30, used: 2 ** 30, available: 3 * 2 ** 30, percent: 25 },
    active_users: 1,
    active_kernels: kernels.length,
    active_executions: 1,
    enforcement: 'cgroup-v1',
    sampled_at: '2020-01-01T00:00:00Z',
    kernels
  };
}

/** Answers from `current`; counts status requests. */
export class FakeServer {
  current: IRateLimitStatus = status();
  stats: ISystemStats = stats();
  fail: Error | null = null;
  requests = 0;

  fetchJSON = async <T>(path: string): Promise<T> => {
    if (path === 'rate-limit-status') {
      this.requests++;
    }
    if (this.fail) {
      throw this.fail;
    }
    return (path === 'rate-limit-status' ? this.current : this.stats) as unknown as T;
  };
}

/** The one clock of a test: the model reads it, jest's timers follow it. */
export class FakeClock {
  ms = EPOCH;

  constructor() {
    jest.useFakeTimers({
      doNotFake: ['Date', 'performance', 'queueMicrotask', 'nextTick', 'setImmediate', 'clearImmediate']
    });
  }

  now = (): number => this.ms;

  /** Let `ms` pass: timers due on the way fire, then posted widget updates run. */
  async advance(ms: number): Promise<void> {
    const step = 100; // the clock and the timers move together, in small steps
    for (let done = 0; done < ms; done += step) {
      const d = Math.min(step, ms - done);
      this.ms += d;
      await jest.advanceTimersByTimeAsync(d);
    }
    await settle();
    MessageLoop.flush();
  }

  uninstall(): void {
    jest.clearAllTimers();
    jest.useRealTimers();
  }
}

/**
 * Run the zero-delay timers that promises chain (a poll's start, then its
 * fetch). Fake timers make a zero delay set during a tick 1 ms, so this moves
 * the timers (not the model's clock) by a few ms.
 */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await jest.advanceTimersByTimeAsync(1);
  }
}

/** A model on the fake clock and server; no polling of its own (600 s interval). */
export function makeModel(server: FakeServer, clock: FakeClock): ResourceModel {
  return new ResourceModel({
    fetchJSON: server.fetchJSON,
    channel: null,
    now: clock.now,
    isHidden: () => false,
    intervalSeconds: 600,
    refreshDelayMs: 20
  });
}

/** Fetch now and let the widgets render what came. */
export async function refreshed(model: ResourceModel): Promise<void> {
  const done = model.refresh();
  await settle();
  await done;
  MessageLoop.flush();
}

export function attach<T extends Widget>(widget: T): T {
  Widget.attach(widget, document.body);
  MessageLoop.flush();
  return widget;
}

/** The text of the first element with this data-testid inside `root`. */
export function text(root: HTMLElement, testId: string): string {
  const node = root.querySelector(`[data-testid="${testId}"]`);
  if (!node) {
    throw new Error(`no [data-testid=${testId}]`);
  }
  return (node.textContent ?? '').replace(/\s+/g, ' ').trim();
}
