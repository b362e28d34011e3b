/**
 * @jest-environment node
 *
 * Unit tests of the shared model: levels, countdowns, refresh on execution,
 * polling (standby, back-off), and cross-tab messages over a real
 * BroadcastChannel (Node's, the same API browsers have).
 */
import { BroadcastChannel } from 'worker_threads';

import { Poll } from '@lumino/polling';

import { formatBytes, formatDuration, IChannel, levelOf, MAX_BACKOFF_MS, ResourceModel } from '../src/model';
import { IRateLimitStatus, ISystemStats, IVerdict } from '../src/types';

function status(overrides: Partial<IRateLimitStatus> = {}): IRateLimitStatus {
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
      { kernel_id: 'k1', source: 'notebook', started_at: '2026-11-28T01:02:03Z', duration_seconds: 2.5 }
    ],
    session: { started_at: '2026-11-28T00:40:00Z', duration_seconds: 1380 },
    disk: null,
    ...overrides
  };
}

function stats(user = 'alice'): ISystemStats {
  return {
    cpu: { percent: 12.5, count: 2 },
    memory: { total: 100, used: 50, available: 50, percent: 50 },
    active_users: 1,
    active_kernels: 1,
    active_executions: 1,
    enforcement: 'cgroup-v1',
    sampled_at: '2026-11-28T01:02:03Z',
    kernels: [
      {
        kernel_id: 'k1',
        user,
        pid: 1,
        memory_bytes: 1,
        cpu_percent: 0,
        execution_state: 'busy',
        limits: { memory_bytes: 2, cpu_percent: 50, execution_seconds: 30 },
        dataset: null,
        warm: false
      }
    ]
  };
}

/** A fake server: answers from `current`, counts requests per path. */
class FakeServer {
  current: IRateLimitStatus = status();
  stats: ISystemStats = stats();
  calls: string[] = [];
  fail: Error | null = null;

  fetchJSON = async <T>(path: string): Promise<T> => {
    this.calls.push(path);
    if (this.fail) {
      throw this.fail;
    }
    return (path === 'rate-limit-status' ? this.current : this.stats) as unknown as T;
  };

  count(path = 'rate-limit-status'): number {
    return this.calls.filter(p => p === path).length;
  }
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error('condition not met in time');
    }
    await sleep(10);
  }
}

const models: ResourceModel[] = [];
function makeModel(server: FakeServer, extra: Partial<ConstructorParameters<typeof ResourceModel>[0]> = {}) {
  const model = new ResourceModel({
    fetchJSON: server.fetchJSON,
    channel: null,
    isHidden: () => false,
    refreshDelayMs: 20,
    ...extra
  });
  models.push(model);
  return model;
}

afterEach(() => {
  while (models.length) {
    models.pop()!.dispose();
  }
});

describe('levelOf', () => {
  it('uses the server word when it is a known level', () => {
    for (const level of ['normal', 'medium', 'high', 'limited']) {
      expect(levelOf(status({ status: level }))).toBe(level);
    }
  });

  it('falls back to the share of the window used', () => {
    const at = (used: number) =>
      levelOf(status({ status: '?', executions_in_window: used, remaining: 10 - used, concurrent_executions: 0 }));
    expect(at(0)).toBe('normal');
    expect(at(4)).toBe('normal');
    expect(at(5)).toBe('medium');
    expect(at(7)).toBe('medium');
    expect(at(8)).toBe('high');
    expect(at(10)).toBe('limited');
  });

  it('is limited while a retry wait runs or all slots are busy', () => {
    expect(levelOf(status({ status: '?', retry_after_seconds: 3 }))).toBe('limited');
    expect(levelOf(status({ status: '?', executions_in_window: 1, concurrent_executions: 2 }))).toBe('limited');
  });
});

describe('formatting', () => {
  it('formats durations and sizes for people', () => {
    expect(formatDuration(41.9)).toBe('41 s');
    expect(formatDuration(185)).toBe('3 min 05 s');
    expect(formatDuration(3720)).toBe('1 h 02 min');
    expect(formatDuration(-5)).toBe('0 s');
    expect(formatBytes(512 * 1024 * 1024)).toBe('512 MiB');
    expect(formatBytes(1536 * 1024 * 1024)).toBe('1.5 GiB');
  });
});

describe('ResourceModel', () => {
  it('fetches both endpoints on start and reports a change', async () => {
    const server = new FakeServer();
    const model = makeModel(server);
    let changes = 0;
    model.changed.connect(() => changes++);
    await model.start();
    await until(() => model.status !== null);
    expect(model.status!.remaining).toBe(7);
    expect(model.stats!.enforcement).toBe('cgroup-v1');
    expect(model.level).toBe('normal');
    expect(server.count('rate-limit-status')).toBe(1);
    expect(server.count('system-stats')).toBe(1);
    expect(changes).toBeGreaterThan(0);
  });

  it('counts down the reset and retry times and counts up durations', async () => {
    let now = 1_000_000;
    const server = new FakeServer();
    server.current = status({ status: 'limited', remaining: 0, retry_after_seconds: 30, reset_in_seconds: 40 });
    const model = makeModel(server, { now: () => now });
    await model.refresh();
    expect(model.resetIn()).toBeCloseTo(40);
    expect(model.retryIn()).toBeCloseTo(30);
    expect(model.isLimited()).toBe(true);
    now += 10_000;
    expect(model.resetIn()).toBeCloseTo(30);
    expect(model.retryIn()).toBeCloseTo(20);
    expect(model.durationOf(model.status!.active_executions[0])).toBeCloseTo(12.5);
    expect(model.sessionDuration()).toBeCloseTo(1390);
    now += 25_000;
    // the wait is over: locally no longer limited, even before the next poll
    expect(model.retryIn()).toBe(0);
    expect(model.isLimited()).toBe(false);
    expect(model.resetIn()).toBeCloseTo(5);
  });

  it('stays limited without a wait while every slot is busy', async () => {
    const server = new FakeServer();
    server.current = status({ status: 'limited', retry_after_seconds: 0, concurrent_executions: 2 });
    const model = makeModel(server);
    await model.refresh();
    expect(model.isLimited()).toBe(true);
  });

  it('asks again the moment a retry wait runs out', async () => {
    const server = new FakeServer();
    server.current = status({ status: 'limited', remaining: 0, retry_after_seconds: 0.2 });
    const model = makeModel(server);
    await model.refresh();
    const before = server.count();
    server.current = status({ status: 'normal' });
    await until(() => model.level === 'normal', 10_000);
    expect(server.count()).toBe(before + 1);
  });

  it('refreshes at once on kernel activity, merging a burst into one request', async () => {
    const server = new FakeServer();
    const model = makeModel(server, { intervalSeconds: 600 });
    await model.refresh();
    const before = server.count();
    server.current = status({ executions_in_window: 4, remaining: 6 });
    for (let i = 0; i < 5; i++) {
      model.refreshSoon(); // busy, idle, busy, idle... from several cells
    }
    await until(() => model.status!.executions_in_window === 4);
    await sleep(100);
    expect(server.count()).toBe(before + 1);
  });

  it('keeps the last snapshot and says why when the server fails', async () => {
    const server = new FakeServer();
    const model = makeModel(server);
    await model.refresh();
    server.fail = new Error('HTTP 503');
    await model.refresh();
    expect(model.error).toBe('HTTP 503');
    expect(model.status!.remaining).toBe(7);
    server.fail = null;
    await model.refresh();
    expect(model.error).toBeNull();
  });

  it('backs off: after failures the next poll waits longer than the interval', async () => {
    // Lumino picks each back-off at random in [interval, last * 3]: take the top of the
    // range so that the schedule is exact, and read it from the poll, not from a clock.
    const random = jest.spyOn(Math, 'random').mockReturnValue(0.999999);
    try {
      const server = new FakeServer();
      server.fail = new Error('down');
      const model = makeModel(server, { intervalSeconds: 0.05 });
      const poll = (model as any)._poll as Poll;
      const waits: number[] = [];
      poll.ticked.connect((_, state) => {
        if (state.phase === 'rejected') {
          waits.push(state.interval);
        }
      });
      await model.start();
      // each wait triples (from the immediate first poll): 1, 4, 13, 40, 121, 364 ms
      await until(() => waits.length >= 6, 10_000);
      for (let i = 1; i < waits.length; i++) {
        expect(waits[i]).toBeGreaterThan(waits[i - 1]);
      }
      expect(waits[5]).toBeGreaterThan(3 * 50); // well past the 50 ms interval
      expect(Math.max(...waits)).toBeLessThanOrEqual(MAX_BACKOFF_MS);
    } finally {
      random.mockRestore();
    }
  });

  it('stands by while the page is hidden', async () => {
    const server = new FakeServer();
    let hidden = true;
    const model = makeModel(server, { isHidden: () => hidden, intervalSeconds: 0.05 });
    await model.start();
    await sleep(300);
    expect(server.count()).toBe(0);
    hidden = false;
    await until(() => server.count() > 0, 10_000);
  });

  it('applies a new refresh interval to the poll', async () => {
    const server = new FakeServer();
    const model = makeModel(server, { intervalSeconds: 600 });
    await model.start();
    await until(() => server.count() === 1);
    model.intervalSeconds = 1;
    expect(model.intervalSeconds).toBe(1);
    await until(() => server.count() >= 3, 10_000); // at once, then after 1 s
  });

  it('sees other users only when the server sends their kernels (admins)', async () => {
    const server = new FakeServer();
    const model = makeModel(server);
    await model.refresh();
    expect(model.seesOtherUsers).toBe(false);
    server.stats = stats('bob');
    await model.refresh();
    expect(model.seesOtherUsers).toBe(true);
  });
});

describe('cross-tab messages', () => {
  const name = () => `eda-test-${Math.random()}`;
  const channel = (n: string) => new BroadcastChannel(n) as unknown as IChannel;

  it('shares a snapshot: the other tab updates without asking the server', async () => {
    const n = name();
    const serverA = new FakeServer();
    const serverB = new FakeServer();
    const a = makeModel(serverA, { channel: channel(n), intervalSeconds: 600 });
    const b = makeModel(serverB, { channel: channel(n), intervalSeconds: 600 });
    serverA.current = status({ status: 'limited', remaining: 0, retry_after_seconds: 12 });
    await a.refresh();
    await until(() => b.level === 'limited');
    expect(serverB.count()).toBe(0);
    expect(b.retryIn()).toBeGreaterThan(10);
  });

  it('passes a refusal on once, and ignores another user', async () => {
    const n = name();
    const a = makeModel(new FakeServer(), { channel: channel(n), intervalSeconds: 600 });
    const b = makeModel(new FakeServer(), { channel: channel(n), intervalSeconds: 600 });
    await a.refresh();
    await until(() => b.status !== null);
    const seenA: IVerdict[] = [];
    const seenB: IVerdict[] = [];
    a.verdictReported.connect((_, v) => seenA.push(v));
    b.verdictReported.connect((_, v) => seenB.push(v));
    const verdict = { ename: 'RateLimitExceeded', evalue: 'retry in 12 s', key: 'm1:RateLimitExceeded' };
    a.reportVerdict(verdict);
    a.reportVerdict(verdict); // the same execution seen twice (notebook + console)
    await until(() => seenB.length === 1);
    expect(seenA).toHaveLength(1);

    // a different user's tab in this browser: not ours to show
    const other = channel(n);
    other.postMessage({ kind: 'verdict', user: 'mallory', verdict: { ...verdict, key: 'x' } });
    other.postMessage({
      kind: 'snapshot',
      user: 'mallory',
      status: status({ user: 'mallory', status: 'limited' }),
      stats: null,
      takenAt: Date.now() + 1000
    });
    await sleep(100);
    other.close();
    expect(seenB).toHaveLength(1);
    expect(b.status!.user).toBe('alice');
    expect(b.level).toBe('normal');
  });

  it('ignores an older snapshot than the one it has', async () => {
    const n = name();
    const b = makeModel(new FakeServer(), { channel: channel(n), intervalSeconds: 600 });
    await b.refresh();
    const other = channel(n);
    other.postMessage({
      kind: 'snapshot',
      user: 'alice',
      status: status({ status: 'high' }),
      stats: null,
      takenAt: b.takenAt - 1000
    });
    await sleep(100);
    other.close();
    expect(b.level).toBe('normal');
  });
});
