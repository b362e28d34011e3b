/**
 * The one shared model of the caller's budget and the server's load.
 *
 * Every widget (status bar, sidebar, runner) reads this model; only the model
 * talks to the server, so a page makes one request per poll whatever is open.
 * Countdowns are derived from the time a snapshot was taken, so they tick
 * without asking the server again.
 */
import { Debouncer, Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { IDisposable } from '@lumino/disposable';

import { kernelPurpose } from './sessions';
import { IActiveExecution, IRateLimitStatus, ISystemStats, IVerdict, Level, LEVELS, levelOfShare } from './types';

/** Fetch JSON from the eda_gateway API; `path` is relative to the API prefix. */
export type FetchJSON = <T>(path: string) => Promise<T>;

/** The parts of BroadcastChannel the model uses (tests pass their own). */
export interface IChannel {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  close(): void;
}

/** What tabs of one browser tell each other. */
export type ChannelMessage =
  | {
      kind: 'snapshot';
      user: string;
      status: IRateLimitStatus;
      stats: ISystemStats | null;
      takenAt: number;
    }
  | { kind: 'verdict'; user: string | null; verdict: IVerdict };

export const DEFAULT_INTERVAL_SECONDS = 15;
/** Longest wait between attempts while the server keeps failing. */
export const MAX_BACKOFF_MS = 5 * 60 * 1000;

/**
 * The level to show for a status. The server decides (`status`); counts are
 * only a fallback for a server that sent an unknown word.
 */
export function levelOf(status: IRateLimitStatus): Level {
  if ((LEVELS as string[]).includes(status.status)) {
    return status.status as Level;
  }
  const { max_executions_per_minute: max, max_concurrent_executions: maxConc } = status.limits;
  if (
    status.remaining <= 0 ||
    (status.daily !== null && status.daily !== undefined && status.daily.remaining <= 0) ||
    status.retry_after_seconds > 0 ||
    (maxConc > 0 && status.concurrent_executions >= maxConc)
  ) {
    return 'limited';
  }
  // below the limit here, so at most 'high'
  const level = levelOfShare(max > 0 ? status.executions_in_window / max : 0);
  return level === 'limited' ? 'high' : level;
}

/**
 * "Today: 3 of 100" (executions in the last 24 h of the daily quota); null
 * when the server has no daily quota.
 */
export function dailyWords(status: IRateLimitStatus): string | null {
  return status.daily ? `Today: ${status.daily.executions} of ${status.limits.max_executions_per_day}` : null;
}

/** "1 h 02 min", "3 min 05 s", "41 s": short, and readable by a screen reader. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) {
    return `${s} s`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  }
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** "512 MiB", "1.5 GiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = value >= 100 || unit === 0 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

export interface IModelOptions {
  fetchJSON: FetchJSON;
  /** Seconds between polls (the user setting). */
  intervalSeconds?: number;
  /** Cross-tab channel; `null` disables sharing. */
  channel?: IChannel | null;
  /** Wall clock in ms (tests move it by hand). */
  now?: () => number;
  /** Stand by while this is true; default: while the page is hidden. */
  isHidden?: () => boolean;
  /** Quiet time before an execution-triggered refresh, to merge bursts. */
  refreshDelayMs?: number;
}

export class ResourceModel implements IDisposable {
  private _kernelLabels = new Map<string, string>();

  constructor(options: IModelOptions) {
    this._fetchJSON = options.fetchJSON;
    this._now = options.now ?? (() => Date.now());
    this._channel = options.channel ?? null;
    this._interval = (options.intervalSeconds ?? DEFAULT_INTERVAL_SECONDS) * 1000;
    const isHidden = options.isHidden;
    this._poll = new Poll({
      auto: false,
      factory: () => this._fetch(),
      frequency: { interval: this._interval, backoff: true, max: MAX_BACKOFF_MS },
      name: 'eda-gateway:resource-model',
      standby: isHidden ? () => (isHidden() ? true : 'never') : 'when-hidden'
    });
    this._soon = new Debouncer(() => this._poll.refresh(), options.refreshDelayMs ?? 250);
    if (this._channel) {
      this._channel.onmessage = event => this._receive(event.data as ChannelMessage);
    }
  }

  /**
   * The model's wall clock in ms. Widgets read time here, never from
   * `Date.now()`, so countdowns they show agree with the model (and tests can
   * move one clock for both).
   */
  now(): number {
    return this._now();
  }

  /** Start polling (the first fetch happens at once). */
  start(): Promise<void> {
    return this._poll.start();
  }

  /** Emitted after every new snapshot, error, or setting change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted for each refusal or stop, seen here or in another tab. */
  get verdictReported(): ISignal<this, IVerdict> {
    return this._verdictReported;
  }

  get status(): IRateLimitStatus | null {
    return this._status;
  }

  get stats(): ISystemStats | null {
    return this._stats;
  }

  /** Why the last fetch failed, or null. */
  get error(): string | null {
    return this._error;
  }

  /** Wall-clock ms at which the current status was taken (0 before the first). */
  get takenAt(): number {
    return this._takenAt;
  }

  get level(): Level | null {
    return this._status ? levelOf(this._status) : null;
  }

  get intervalSeconds(): number {
    return this._interval / 1000;
  }

  set intervalSeconds(seconds: number) {
    const interval = Math.max(1, seconds) * 1000;
    if (interval === this._interval) {
      return;
    }
    this._interval = interval;
    this._poll.frequency = { ...this._poll.frequency, interval };
    // The poll keeps its already scheduled tick: fetch now so the new pace starts.
    if (this._poll.state.phase !== 'constructed') {
      void this._poll.refresh();
    }
    this._changed.emit();
  }

  /** True when the caller saw another user's kernels: only admins do. */
  get seesOtherUsers(): boolean {
    const me = this._status?.user;
    return !!me && !!this._stats?.kernels.some(k => k.user !== me);
  }

  private _elapsed(now: number): number {
    return Math.max(0, (now - this._takenAt) / 1000);
  }

  /** Seconds until the oldest execution leaves the window, ticking down. */
  resetIn(now = this._now()): number {
    if (!this._status) {
      return 0;
    }
    return Math.max(0, this._status.reset_in_seconds - this._elapsed(now));
  }

  /** Seconds until something may run again (0 when it may run now). */
  retryIn(now = this._now()): number {
    if (!this._status) {
      return 0;
    }
    return Math.max(0, this._status.retry_after_seconds - this._elapsed(now));
  }

  /**
   * Whether running now would be refused, as far as the last snapshot knows.
   * A limit whose wait has run out is no longer "limited" locally; the
   * refresh scheduled for that moment brings the server's word.
   */
  isLimited(now = this._now()): boolean {
    if (this.level !== 'limited') {
      return false;
    }
    // A server that says limited without a wait (e.g. all slots busy) stays limited.
    return this._status!.retry_after_seconds <= 0 || this.retryIn(now) > 0;
  }

  /** How long an active execution has been running, ticking up. */
  durationOf(execution: IActiveExecution, now = this._now()): number {
    return execution.duration_seconds + this._elapsed(now);
  }

  sessionDuration(now = this._now()): number | null {
    const session = this._status?.session;
    return session ? session.duration_seconds + this._elapsed(now) : null;
  }

  /** Fetch now; resolves after the new snapshot (or error) is in. */
  async refresh(): Promise<void> {
    await this._poll.refresh();
    await this._poll.tick.catch(() => undefined);
  }

  /**
   * Refresh shortly: called on every kernel busy/idle of an execution, so a
   * burst of cells costs one request.
   */
  refreshSoon(): void {
    void this._soon.invoke();
  }

  /** What a kernel without a notebook is called: what this page ran there (the EDA Runner's
   * "EDA Runner: sales"), else what the server says it is for (a dataset kernel an agent runs
   * on, a warm kernel); null when neither knows. */
  kernelLabel(kernelId: string): string | null {
    const stats = this._stats?.kernels.find(k => k.kernel_id === kernelId);
    return this._kernelLabels.get(kernelId) ?? (stats ? kernelPurpose(stats) : null);
  }

  labelKernel(kernelId: string, label: string): void {
    this._kernelLabels.set(kernelId, label);
  }

  /** Report a refusal/stop seen in this tab; other tabs hear of it too. */
  reportVerdict(verdict: IVerdict): void {
    if (!this._remember(verdict.key)) {
      return;
    }
    this._post({ kind: 'verdict', user: this._status?.user ?? null, verdict });
    this._verdictReported.emit(verdict);
    this.refreshSoon();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    // Poll.dispose() leaves its timer armed; stop() clears it first.
    void this._poll.stop();
    this._poll.dispose();
    this._soon.dispose();
    clearTimeout(this._wakeTimer);
    if (this._channel) {
      this._channel.onmessage = null;
      this._channel.close();
    }
    Signal.clearData(this);
  }

  private async _fetch(): Promise<void> {
    // Time the snapshot from the request's start: a slow answer then makes
    // durations jump forward a little, never tick backwards.
    const startedAt = this._now();
    const [status, stats] = await Promise.allSettled([
      this._fetchJSON<IRateLimitStatus>('rate-limit-status'),
      this._fetchJSON<ISystemStats>('system-stats')
    ]);
    if (this._isDisposed) {
      return;
    }
    if (status.status === 'rejected') {
      this._error = errorText(status.reason);
      this._changed.emit();
      throw status.reason; // lets the poll back off
    }
    this._error = stats.status === 'rejected' ? errorText(stats.reason) : null;
    this._apply(status.value, stats.status === 'fulfilled' ? stats.value : this._stats, startedAt);
    this._post({
      kind: 'snapshot',
      user: status.value.user,
      status: status.value,
      stats: this._stats,
      takenAt: this._takenAt
    });
  }

  private _apply(status: IRateLimitStatus, stats: ISystemStats | null, takenAt: number): void {
    this._status = status;
    this._stats = stats;
    this._takenAt = takenAt;
    this._scheduleWake();
    this._changed.emit();
  }

  /** While limited, ask again the moment the wait runs out. */
  private _scheduleWake(): void {
    clearTimeout(this._wakeTimer);
    const wait = this._status?.retry_after_seconds ?? 0;
    if (wait > 0) {
      this._wakeTimer = setTimeout(() => this.refreshSoon(), wait * 1000 + 100);
    }
  }

  private _receive(message: ChannelMessage): void {
    if (this._isDisposed || !message || typeof message !== 'object') {
      return;
    }
    const me = this._status?.user;
    if (message.kind === 'snapshot') {
      // Another user's tab in this browser (another login) is not ours to show.
      if ((me && message.user !== me) || message.takenAt <= this._takenAt) {
        return;
      }
      this._error = null;
      this._apply(message.status, message.stats, message.takenAt);
    } else if (message.kind === 'verdict') {
      if ((me && message.user && message.user !== me) || !this._remember(message.verdict.key)) {
        return;
      }
      this._verdictReported.emit(message.verdict);
    }
  }

  private _post(message: ChannelMessage): void {
    try {
      this._channel?.postMessage(message);
    } catch {
      // a closed channel (page unloading) is not worth an error
    }
  }

  /** True the first time a verdict key is seen. */
  private _remember(key: string): boolean {
    if (this._seenVerdicts.has(key)) {
      return false;
    }
    this._seenVerdicts.add(key);
    if (this._seenVerdicts.size > 200) {
      this._seenVerdicts.delete(this._seenVerdicts.values().next().value as string);
    }
    return true;
  }

  private _fetchJSON: FetchJSON;
  private _now: () => number;
  private _channel: IChannel | null;
  private _interval: number;
  private _poll: Poll;
  private _soon: Debouncer;
  private _status: IRateLimitStatus | null = null;
  private _stats: ISystemStats | null = null;
  private _error: string | null = null;
  private _takenAt = 0;
  private _wakeTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  private _seenVerdicts = new Set<string>();
  private _isDisposed = false;
  private _changed = new Signal<this, void>(this);
  private _verdictReported = new Signal<this, IVerdict>(this);
}

function errorText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}
