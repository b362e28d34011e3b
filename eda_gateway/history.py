"""Usage history: activity events and usage samples, for charts and audits.

Kept in a SQLite file (one server's) or in PostgreSQL, which several servers may share:
every row names the server that wrote it (``server``). history_backends.py holds what
differs between the two; the SQL here is the same for both.

Callers on the event loop only enqueue (``record_event``, ``record_samples``): a
single writer thread owns the write connection and commits whatever has queued up
in one transaction, so the loop never waits for the disk. The queue is bounded: if
the disk cannot keep up, new records are dropped and counted rather than letting
memory grow or the loop block.

Refused executions cost their sender nothing, so they are not a row each: a refusal
adds one to its user's row for that minute (``record_count``; one row per user, minute,
kernel, source and reason, its ``count`` the refusals it stands for).

The file is bounded twice: rows older than ``retention_days`` are purged (at start
and then periodically), and each table keeps at most ``max_rows`` rows *per user*
(that user's oldest go first), so no user's activity can evict another's audit trail.
Readers (``series``, ``events``, ``summary``) open their own connection and are
blocking calls: run them in an executor. ``flush()`` first, to read your writes.

A write that fails is dropped and counted (``dropped``), except when the connection to
PostgreSQL is gone: then the writer keeps its batch and reconnects, backing off from
``retry_delay`` to ``max_retry_delay`` seconds; meanwhile the queue fills and what does
not fit is dropped and counted. A connection lost during COMMIT leaves the writer not knowing
whether its batch landed: each batch writes its id to ``batches`` in the same transaction, and
a retry that finds its id there writes nothing (the writer deletes its last id with its next
batch, so the table holds about one row per server).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass

from .history_backends import backend_for

log = logging.getLogger(__name__)

# Event kinds (also the jupyter_events "action" names, see activity.py).
EXECUTION_ADMITTED = "execution.admitted"
EXECUTION_REFUSED = "execution.refused"
VERDICT = "verdict"
KERNEL_STARTED = "kernel.started"
KERNEL_RESTARTED = "kernel.restarted"
KERNEL_STOPPED = "kernel.stopped"
KERNEL_RECLAIMED = "kernel.reclaimed"  # shut down because idle (details.reason: "idle" or "quota")
LOGIN = "login"
KINDS = (EXECUTION_ADMITTED, EXECUTION_REFUSED, VERDICT, KERNEL_STARTED, KERNEL_RESTARTED, KERNEL_STOPPED,
         KERNEL_RECLAIMED, LOGIN)

# A counted event's row covers this many seconds (record_count).
COUNT_BUCKET_SECONDS = 60.0

# Charts are drawn from dense buckets; more than this is a mistake, not a chart.
MAX_BUCKETS = 2000


@dataclass(frozen=True)
class Sample:
    """One user's usage at one moment, summed over their kernels."""

    user: str
    kernels: int
    memory_bytes: int | None
    cpu_percent: float | None
    ts: float


class _Flush:
    """Queue marker: set once everything queued before it is committed."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class HistoryStore:
    def __init__(
        self,
        path: str,
        retention_days: float = 30.0,
        max_rows: int = 1_000_000,
        server: str = "",
        max_pending: int = 50_000,
        batch_delay: float = 0.25,
        purge_interval: float = 3600.0,
        clock: Callable[[], float] = time.time,
        retry_delay: float = 0.5,
        max_retry_delay: float = 30.0,
    ) -> None:
        """``path``: a SQLite file, or a ``postgresql://`` URL; ``server``: this server's
        name, written in each of its rows."""
        self.db = backend_for(path)
        self.path = self.db.target  # a file's absolute path, or the URL without its password
        self.server = server
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.retention_days = retention_days
        self.max_rows = max_rows
        self.batch_delay = batch_delay
        self.purge_interval = purge_interval
        self.clock = clock
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._conn = None  # the writer's; None while PostgreSQL is away
        self._landed: str | None = None  # the id of the writer's last batch known to be committed

    # --- life cycle -------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Open (or create) the database and start the writer; raises if it cannot."""
        self._thread = threading.Thread(target=self._run, name="eda-history-writer", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            error = self.db.scrub(str(self._error))
            raise RuntimeError(f"cannot open history database {self.path}: {error}") from self._error

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued and stop the writer (blocking)."""
        if self._thread is None or not self._thread.is_alive():
            return
        self._stopping.set()  # no more waiting for bursts: the server is going
        self._put(_STOP, block=True, timeout=timeout)
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- writing (any thread, never blocks) ---------------------------------------

    def record_event(
        self,
        kind: str,
        user: str,
        *,
        at: float | None = None,
        kernel_id: str | None = None,
        source: str | None = None,
        reason: str | None = None,
        details: dict | None = None,
    ) -> None:
        row = (
            at if at is not None else self.clock(),
            user,
            self.server,
            kind,
            kernel_id,
            source,
            reason,
            json.dumps(details, separators=(",", ":")) if details else None,
        )
        self._put(("event", row))

    def record_count(
        self,
        kind: str,
        user: str,
        *,
        at: float | None = None,
        kernel_id: str | None = None,
        source: str | None = None,
        reason: str | None = None,
    ) -> None:
        """One more ``kind`` for ``user`` in the minute of ``at``: adds to that minute's row."""
        at = at if at is not None else self.clock()
        minute = (at // COUNT_BUCKET_SECONDS) * COUNT_BUCKET_SECONDS
        self._put(("count", (minute, user, kind, kernel_id, source, reason)))

    def record_samples(self, samples: Iterable[Sample]) -> None:
        rows = [(s.ts, s.user, self.server, s.kernels, s.memory_bytes, s.cpu_percent) for s in samples]
        if rows:
            self._put(("samples", rows))

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything recorded so far is committed (call off the event loop)."""
        if not self.running:
            return False
        marker = _Flush()
        self._put(marker, block=True, timeout=timeout)
        return marker.done.wait(timeout)

    def _put(self, item, block: bool = False, timeout: float | None = None) -> None:
        try:
            self._queue.put(item, block=block, timeout=timeout)
        except queue.Full:
            self._count_drops(1, "history writer is behind")

    def _count_drops(self, n: int, why: str) -> None:
        before, self.dropped = self.dropped, self.dropped + n
        if before == 0 or before // 1000 != self.dropped // 1000:  # the first, then every 1000th
            log.warning("eda_gateway: %s; %d records dropped", why, self.dropped)

    # --- the writer thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._conn = self.db.open()
            self.purge(self._conn)
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            if self._conn is not None:
                self._conn.close()
            self._ready.set()
            return
        self._ready.set()
        next_purge = time.monotonic() + self.purge_interval
        try:
            while True:
                batch = [self._queue.get()]
                if batch[0] is not _STOP and not isinstance(batch[0], _Flush):
                    self._stopping.wait(self.batch_delay)  # let a burst coalesce into one commit
                while len(batch) < 5000:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = self._write(batch)
                if stop:
                    return
                if time.monotonic() >= next_purge and self._conn is not None:
                    try:
                        self.purge(self._conn)
                    except self.db.Error as e:  # the connection's loss shows at the next write
                        log.warning("eda_gateway: history purge failed: %s", self.db.scrub(str(e)))
                    next_purge = time.monotonic() + self.purge_interval
        finally:
            if self._conn is not None:
                self._conn.close()

    def _write(self, batch: list) -> bool:
        events, samples, flushes, stop = [], [], [], False
        counts: dict[tuple, int] = {}
        for item in batch:
            if item is _STOP:
                stop = True
            elif isinstance(item, _Flush):
                flushes.append(item)
            elif item[0] == "event":
                events.append(item[1])
            elif item[0] == "count":
                counts[item[1]] = counts.get(item[1], 0) + 1
            else:
                samples.extend(item[1])
        if events or samples or counts:
            self._commit(events, counts, samples)
        for marker in flushes:
            marker.done.set()
        return stop

    def _commit(self, events: list, counts: dict, samples: list) -> None:
        """One transaction, which the writer retries while PostgreSQL is away (and once
        more if it was a deadlock's victim); any other failure drops the batch."""
        records = len(events) + len(samples) + sum(counts.values())
        delay, retried = self.retry_delay, False
        batch = uuid.uuid4().hex  # the same id on every retry of this batch
        while True:
            try:
                if self._conn is None:
                    self._conn = self.db.open()
                    log.info("eda_gateway: history database %s is back", self.path)
                with self.db.transaction(self._conn):
                    self._insert(self._conn.cursor(), batch, events, counts, samples)
                self._landed = batch
                return
            except self.db.Error as e:
                error = self.db.scrub(str(e))
                if self.db.retryable(e) and not retried:
                    retried = True  # rolled back whole: nothing written twice
                    continue
                if not self.db.lost(self._conn):  # the database refused this batch (disk full, ...)
                    log.error("eda_gateway: history write of %d records failed: %s", records, error)
                    self._count_drops(records, "history writes failed")
                    return
                # the connection is gone (if it went during COMMIT, the retry finds the batch's id)
                if self._conn is not None:
                    log.warning("eda_gateway: history database %s unreachable (%s); retrying, "
                                "back-off up to %g s", self.path, error, self.max_retry_delay)
                    self._conn.close()
                    self._conn = None
                if self._stopping.is_set():  # the server is going: no waiting for the database
                    self._count_drops(records, f"history database {self.path} unreachable at shutdown")
                    return
                self._back_off(delay)
                delay = min(delay * 2, self.max_retry_delay)

    def _back_off(self, delay: float) -> None:
        self._stopping.wait(delay)  # a stop ends the wait

    def _insert(self, cur, batch: str, events: list, counts: dict, samples: list) -> None:
        sql = self.db.sql
        self.db.lock_writers(cur)  # first: the other servers' writers wait here, holding nothing
        cur.execute(sql("INSERT INTO batches (uid, ts) VALUES (?, ?) ON CONFLICT (uid) DO NOTHING"),
                    (batch, self.clock()))
        if not cur.rowcount:
            log.info("eda_gateway: a history batch committed before its connection went was not written again")
            return
        if self._landed is not None:  # known to have landed: its id has done its job
            cur.execute(sql("DELETE FROM batches WHERE uid = ?"), (self._landed,))
        if events:
            cur.executemany(
                sql('INSERT INTO events (ts, "user", server, kind, kernel_id, source, reason, details) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                events,
            )
        for key, n in counts.items():
            self._add_count(cur, key, n)
        if samples:
            cur.executemany(
                sql('INSERT INTO samples (ts, "user", server, kernels, memory_bytes, cpu_percent) '
                    "VALUES (?, ?, ?, ?, ?, ?)"),
                samples,
            )
        self._cap_rows(cur, {row[1] for row in events} | {key[1] for key in counts}, {row[1] for row in samples})

    def _add_count(self, cur, key: tuple, n: int) -> None:
        # this server's row: only its own writer updates it, so update-else-insert cannot race
        ts, user, kind, kernel_id, source, reason = key
        same = self.db.same
        cur.execute(
            self.db.sql(f'UPDATE events SET count = count + ? WHERE "user" = ? AND ts = ? AND kind = ? '
                        f"AND server = ? AND kernel_id {same} ? AND source {same} ? AND reason {same} ?"),
            (n, user, ts, kind, self.server, kernel_id, source, reason),
        )
        if not cur.rowcount:
            cur.execute(
                self.db.sql('INSERT INTO events (ts, "user", server, kind, kernel_id, source, reason, count) '
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                (ts, user, self.server, kind, kernel_id, source, reason, n),
            )

    def _cap_rows(self, cur, event_users: set, sample_users: set) -> None:
        # per user (whichever server wrote the rows), only for users who just wrote:
        # the cut is their max_rows-th newest row
        for table, users in (("events", event_users), ("samples", sample_users)):
            for user in users:
                cur.execute(
                    self.db.sql(f'DELETE FROM {table} WHERE "user" = ? AND id <= '
                                f'(SELECT id FROM {table} WHERE "user" = ? ORDER BY id DESC LIMIT 1 OFFSET ?)'),
                    (user, user, self.max_rows),
                )

    def purge(self, conn=None) -> int:
        """Delete rows older than the retention period (every server's); returns how many went."""
        own = conn is None
        conn = conn or self.db.connect()
        horizon = self.clock() - self.retention_days * 86400.0
        try:
            with self.db.transaction(conn):
                cur = conn.cursor()
                self.db.lock_writers(cur)
                cur.execute(self.db.sql("DELETE FROM events WHERE ts < ?"), (horizon,))
                removed = cur.rowcount
                cur.execute(self.db.sql("DELETE FROM samples WHERE ts < ?"), (horizon,))
                removed += cur.rowcount
                cur.execute(self.db.sql("DELETE FROM batches WHERE ts < ?"), (horizon,))  # crashed writers'
        finally:
            if own:
                conn.close()
        if removed:
            log.info("eda_gateway: history purged %d rows older than %s days", removed, self.retention_days)
        return removed

    # --- reading (blocking: call in an executor) -------------------------------------

    def events(
        self,
        user: str | None = None,
        since: float | None = None,
        until: float | None = None,
        kinds: Iterable[str] | None = None,
        limit: int = 500,
    ) -> list[dict]:
        """The newest ``limit`` events in the range, newest first."""
        where, args = self._where(user, since, until)
        kinds = list(kinds or ())
        if kinds:
            where += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += kinds
        with self._reader() as conn:
            rows = conn.execute(
                self.db.sql('SELECT ts, "user", server, kind, kernel_id, source, reason, details, count FROM events '
                            f"WHERE {where} ORDER BY ts DESC, id DESC LIMIT ?"),
                (*args, limit),
            ).fetchall()
        return [
            {
                "at": ts,
                "user": u,
                "server": server,
                "kind": kind,
                "kernel_id": kid,
                "source": source,
                "reason": reason,
                "details": json.loads(details) if details else {},
                "count": count,
            }
            for ts, u, server, kind, kid, source, reason, details, count in rows
        ]

    def summary(self, since: float, until: float | None = None, user: str | None = None) -> dict[str, dict]:
        """Per user (or only ``user``): refusals by reason, verdicts by name, event counts, last
        activity, and the servers that recorded these events (sorted)."""
        where, args = self._where(user, since, until)
        out: dict[str, dict] = {}
        with self._reader() as conn:
            rows = conn.execute(
                self.db.sql(f'SELECT "user", server, kind, reason, SUM(count), MAX(ts) FROM events WHERE {where} '
                            'GROUP BY "user", server, kind, reason'),
                args,
            ).fetchall()
        for user, server, kind, reason, count, last in rows:
            entry = out.setdefault(
                user,
                {"executions": 0, "refusals": {}, "verdicts": {}, "logins": 0, "last_activity": None, "servers": []},
            )
            entry["last_activity"] = max(entry["last_activity"] or 0.0, last)
            if server not in entry["servers"]:
                entry["servers"] = sorted([*entry["servers"], server])
            if kind == EXECUTION_ADMITTED:
                entry["executions"] += count
            elif kind == EXECUTION_REFUSED:
                key = reason or "unknown"
                entry["refusals"][key] = entry["refusals"].get(key, 0) + count
            elif kind == VERDICT:
                key = reason or "unknown"
                entry["verdicts"][key] = entry["verdicts"].get(key, 0) + count
            elif kind == LOGIN:
                entry["logins"] += count
        return out

    def series(self, user: str | None, since: float, until: float, bucket: float) -> dict[str, list[dict]]:
        """Per user, dense buckets over [since, until): executions, refusals, verdicts,
        peak memory and CPU (mean and peak of the samples in the bucket)."""
        count = math.ceil((until - since) / bucket)
        if count > MAX_BUCKETS:
            raise ValueError(f"{count} buckets of {bucket:g} s; at most {MAX_BUCKETS}: use a larger bucket")
        where, args = self._where(user, since, until)
        with self._reader() as conn:
            event_rows = conn.execute(
                self.db.sql(f'SELECT "user", {self.db.bucket} AS b, kind, SUM(count) FROM events '
                            f'WHERE {where} AND kind IN (?, ?, ?) GROUP BY "user", b, kind'),
                (since, bucket, *args, EXECUTION_ADMITTED, EXECUTION_REFUSED, VERDICT),
            ).fetchall()
            sample_rows = conn.execute(
                self.db.sql(f'SELECT "user", {self.db.bucket} AS b, MAX(memory_bytes), AVG(cpu_percent), '
                            f'MAX(cpu_percent), MAX(kernels) FROM samples WHERE {where} GROUP BY "user", b'),
                (since, bucket, *args),
            ).fetchall()
        users = sorted({r[0] for r in event_rows} | {r[0] for r in sample_rows} | ({user} if user else set()))
        series = {
            u: [
                {
                    "start": since + i * bucket,
                    "executions": 0,
                    "refusals": 0,
                    "verdicts": 0,
                    "peak_memory_bytes": None,
                    "cpu_percent": None,
                    "peak_cpu_percent": None,
                    "kernels": None,
                }
                for i in range(count)
            ]
            for u in users
        }
        field = {EXECUTION_ADMITTED: "executions", EXECUTION_REFUSED: "refusals", VERDICT: "verdicts"}
        for u, b, kind, n in event_rows:
            if 0 <= b < count:
                series[u][b][field[kind]] = n
        for u, b, memory, cpu, peak_cpu, kernels in sample_rows:
            if 0 <= b < count:
                point = series[u][b]
                point["peak_memory_bytes"] = memory
                point["cpu_percent"] = round(cpu, 2) if cpu is not None else None
                point["peak_cpu_percent"] = peak_cpu
                point["kernels"] = kernels
        return series

    def _reader(self):
        return closing(self.db.reader())

    @staticmethod
    def _where(user, since, until) -> tuple[str, list]:
        clauses, args = ["1 = 1"], []
        if user is not None:
            clauses.append('"user" = ?')
            args.append(user)
        if since is not None:
            clauses.append("ts >= ?")
            args.append(since)
        if until is not None:
            clauses.append("ts < ?")
            args.append(until)
        return " AND ".join(clauses), args

