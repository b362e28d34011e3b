/**
 * @jest-environment node
 *
 * The notification text says what happened and when to retry.
 * (@jupyterlab/apputils is ESM; only the pure text function is tested here,
 * the toast itself is checked in the browser tests.)
 */
jest.mock('@jupyterlab/apputils', () => ({ Notification: {} }));

import { verdictMessage } from '../src/notify';

describe('verdictMessage', () => {
  it('keeps the server reason and its retry time', () => {
    const { message, type } = verdictMessage(
      { ename: 'RateLimitExceeded', evalue: '3 executions per 60 s used: retry in 12 s', key: 'a' },
      0
    );
    expect(type).toBe('warning');
    expect(message).toContain('rate limit');
    expect(message).toContain('retry in 12 s');
    expect(message).not.toContain('Retry in');
  });

  it('adds the wait from the last snapshot when the reason has none', () => {
    const { message } = verdictMessage({ ename: 'RateLimitExceeded', evalue: 'too many', key: 'b' }, 7.2);
    expect(message).toContain('Retry in 8 s');
  });

  it('names sandbox stops', () => {
    expect(verdictMessage({ ename: 'ExecutionTimeout', evalue: 'over 3 s', key: 'c' }).message).toMatch(
      /time limit.*over 3 s.*run again now/
    );
    const memory = verdictMessage({ ename: 'MemoryLimitExceeded', evalue: 'over 128 MiB', key: 'd' });
    expect(memory.type).toBe('error');
    expect(memory.message).toMatch(/memory limit.*over 128 MiB/);
  });
});
