/**
 * The UI's side of the contract: numbers come from fields (metadata,
 * bodies, headers), never from the server's sentences, and levels use the
 * thresholds generated from openapi.json.
 * (@jupyterlab/apputils is ESM; only the pure functions are tested here.)
 */
jest.mock('@jupyterlab/apputils', () => ({ Notification: {} }));

import { LEVEL_THRESHOLDS } from '../src/api-types';
import { shareLevel } from '../src/dom';
import { levelOf } from '../src/model';
import { verdictMessage } from '../src/notify';
import { limitWords } from '../src/refusal';
import { IRateLimitStatus, levelOfShare } from '../src/types';
import { verdictDetails } from '../src/watch';

const limits = {
  max_executions_per_minute: 10,
  window_seconds: 60,
  max_concurrent_executions: 2,
  max_executions_per_day: 0
};

describe('retry seconds travel as fields', () => {
  it('reads reason and retry_after_seconds from metadata.eda_gateway', () => {
    const metadata = { eda_gateway: { verdict: 'RateLimitExceeded', reason: 'per_minute', retry_after_seconds: 41.2 } };
    expect(verdictDetails(metadata)).toEqual({ reason: 'per_minute', retryAfterSeconds: 41.2 });
    expect(verdictDetails({})).toEqual({});
    expect(verdictDetails(null)).toEqual({});
    expect(verdictDetails({ eda_gateway: { verdict: 'x', retry_after_seconds: '41' } })).toEqual({});
  });

  it('says when from the field, whatever the words say', () => {
    const { message } = verdictMessage(
      {
        ename: 'RateLimitExceeded',
        evalue: 'Rate limit exceeded. Try again in 12 s.',
        reason: 'per_minute',
        retryAfterSeconds: 41.2,
        key: 'a'
      },
      3,
      limits
    );
    expect(message).toContain('Retry in 42 s');
    expect(message).toContain('at most 10 executions per 1 min');
    expect(message).not.toContain('12 s');
  });

  it('falls back to the snapshot when the verdict has no number', () => {
    const { message } = verdictMessage({ ename: 'RateLimitExceeded', evalue: 'refused', key: 'b' }, 7.2);
    expect(message).toContain('Retry in 8 s');
  });

  it('a concurrency refusal with no known wait waits for a running execution', () => {
    const { message } = verdictMessage(
      { ename: 'RateLimitExceeded', evalue: '', reason: 'concurrent', retryAfterSeconds: 0, key: 'c' },
      0,
      limits
    );
    expect(message).toContain('at most 2 executions at once');
    expect(message).toContain('when a running execution ends');
  });

  it('names the daily quota from the limits field', () => {
    const { message } = verdictMessage(
      {
        ename: 'RateLimitExceeded',
        evalue: 'Try again in 1 h.',
        reason: 'per_day',
        retryAfterSeconds: 18720,
        key: 'd'
      },
      0,
      { ...limits, max_executions_per_day: 100 }
    );
    expect(message).toContain('at most 100 executions per 24 h');
    expect(message).toContain('Retry in 5 h 12 min');
    expect(limitWords('per_day', null)).toContain('daily execution quota is used up');
  });

  it('names unknown reasons with the server message', () => {
    expect(limitWords('per_fortnight', limits)).toBeNull();
    expect(limitWords('per_minute', null)).toContain('used up');
  });
});

describe('level thresholds are defined once (openapi.json)', () => {
  it('splits shares at the generated thresholds', () => {
    const { medium, high } = LEVEL_THRESHOLDS;
    expect(levelOfShare(0)).toBe('normal');
    expect(levelOfShare(medium - 0.001)).toBe('normal');
    expect(levelOfShare(medium)).toBe('medium');
    expect(levelOfShare(high - 0.001)).toBe('medium');
    expect(levelOfShare(high)).toBe('high');
    expect(levelOfShare(1)).toBe('limited');
    expect(shareLevel(high * 100, 100)).toBe('high');
    expect(shareLevel(5, 0)).toBe('normal');
  });

  it('the fallback of levelOf uses them too', () => {
    const status = {
      user: 'alice',
      limits,
      executions_in_window: Math.ceil(LEVEL_THRESHOLDS.high * 10),
      remaining: 10 - Math.ceil(LEVEL_THRESHOLDS.high * 10),
      concurrent_executions: 0,
      retry_after_seconds: 0,
      reset_in_seconds: 1,
      status: 'a word from a newer server',
      active_executions: [],
      session: null,
      disk: null,
      daily: null
    } as IRateLimitStatus;
    expect(levelOf(status)).toBe('high');
    expect(levelOf({ ...status, status: 'medium' })).toBe('medium'); // the server decides
    // a used-up daily quota limits whatever the window says
    expect(levelOf({ ...status, daily: { executions: 5, remaining: 0, reset_in_seconds: 60 } })).toBe('limited');
  });
});
