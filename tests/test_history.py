"""Usage history: a real SQLite file, a real writer thread, a real server restarted on it."""

from __future__ import annotations

import sqlite3
import time

import pytest

from eda_gateway import history as h
from eda_gateway.history import HistoryStore, Sample
from harness import GatewayServer

DAY = 86400.0


@pytest.fixture
def store(tmp_path):
    s = HistoryStore(str(tmp_path / "h.sqlite"), batch_delay=0.01)
    s.start()
    yield s
    s.stop()


def test_events_are_recorded_and_queryable(store):
    t0 = 1_800_000_000.0  # a round minute
    store.record_event(h.EXECUTION_ADMITTED, "alice", at=t0 + 1, kernel_id="k1", source="notebook")
    store.record_event(h.EXECUTION_ADMITTED, "alice", at=t0 + 2, kernel_id="k1", source="api")
    store.record_event(h.EXECUTION_REFUSED, "alice", at=t0 + 3, kernel_id="k1", reason="per_minute")
    store.record_event(h.EXECUTION_REFUSED, "alice", at=t0 + 65, kernel_id="k2", reason="concurrent")
    store.record_event(h.VERDICT, "bob", at=t0 + 70, kernel_id="k3", reason="MemoryLimitExceeded",
                       details={"killed": True})
    store.record_samples([Sample("alice", 1, 100, 10.0, t0 + 5), Sample("alice", 2, 300, 30.0, t0 + 50),
                          Sample("bob", 1, 50, 99.0, t0 + 61)])
    assert store.flush()

    events = store.events(user="alice")
    assert [e["kind"] for e in events] == [h.EXECUTION_REFUSED, h.EXECUTION_REFUSED,
                                           h.EXECUTION_ADMITTED, h.EXECUTION_ADMITTED]  # newest first
    assert events[0]["reason"] == "concurrent" and events[-1]["source"] == "notebook"
    assert store.events(kinds=[h.VERDICT])[0]["details"] == {"killed": True}

    summary = store.summary(since=t0)
    assert summary["alice"]["executions"] == 2
    assert summary["alice"]["refusals"] == {"per_minute": 1, "concurrent": 1}
    assert summary["bob"]["verdicts"] == {"MemoryLimitExceeded": 1}
    assert summary["bob"]["last_activity"] == t0 + 70

    series = store.series(None, t0, t0 + 180, 60)
    alice, bob = series["alice"], series["bob"]
    assert len(alice) == len(bob) == 3  # dense: every bucket, even empty ones
    assert [p["executions"] for p in alice] == [2, 0, 0]
    assert [p["refusals"] for p in alice] == [1, 1, 0]
    assert alice[0]["peak_memory_bytes"] == 300 and alice[0]["cpu_percent"] == 20.0
    assert alice[0]["peak_cpu_percent"] == 30.0 and alice[0]["kernels"] == 2
    assert alice[1]["peak_memory_bytes"] is None
    assert [p["verdicts"] for p in bob] == [0, 1, 0] and bob[1]["peak_memory_bytes"] == 50
    assert list(store.series("bob", t0, t0 + 180, 60)) == ["bob"]
    with pytest.raises(ValueError, match="buckets"):
        store.series(None, t0, t0 + 10 * DAY, 1)


def test_retention_purges_old_rows(tmp_path):
    path = str(tmp_path / "h.sqlite")
    now = time.time()
    s = HistoryStore(path, retention_days=30, batch_delay=0.01)
    s.start()
    s.record_event(h.LOGIN, "old", at=now - 40 * DAY)
    s.record_samples([Sample("old", 1, 1, 1.0, now - 31 * DAY)])
    s.record_event(h.LOGIN, "recent", at=now - 29 * DAY)
    s.flush()
    assert s.purge() == 2  # the periodic purge, run now
    assert [e["user"] for e in s.events()] == ["recent"]
    s.stop()

    # and at start-up: a store reopened with a shorter retention drops what it no longer keeps
    s = HistoryStore(path, retention_days=7, batch_delay=0.01)
    s.start()
    try:
        assert s.events() == []
    finally:
        s.stop()


def test_size_is_bounded(tmp_path):
    s = HistoryStore(str(tmp_path / "h.sqlite"), max_rows=10, max_pending=30, batch_delay=0.01)
    # the writer is not running yet: the queue holds 30 records and drops the rest
    for i in range(40):
        s.record_event(h.EXECUTION_ADMITTED, "alice", at=1_800_000_000.0 + i)
    assert s.dropped == 10
    s.start()
    try:
        s.flush()
        kept = s.events(limit=100)
        assert len(kept) == 10  # at most max_rows, the newest
        assert kept[0]["at"] == 1_800_000_029.0 and kept[-1]["at"] == 1_800_000_020.0
    finally:
        s.stop()


def test_database_is_private_and_written_by_one_thread(tmp_path):
    path = tmp_path / "sub" / "h.sqlite"
    s = HistoryStore(str(path), batch_delay=0.01)
    s.start()
    try:
        s.record_event(h.LOGIN, "alice")
        s.flush()
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert s._thread.name == "eda-history-writer"
    finally:
        s.stop()
    assert not s.running


def test_unwritable_history_db_stops_start_up(refused_start):
    assert "EDAGateway.history_db" in refused_start({"EDAGateway": {"history_db": "/proc/nope/history.sqlite"}})


@pytest.mark.e2e
def test_history_survives_restart_and_old_rows_are_purged_at_start(tmp_path):
    # a history file from an earlier life, with one row past the retention period
    db = tmp_path / "history.sqlite"
    seed = HistoryStore(str(db), batch_delay=0.01)
    seed.start()
    seed.record_event(h.LOGIN, "ancient", at=time.time() - 10 * DAY)
    seed.record_event(h.LOGIN, "carol", at=time.time() - 1 * DAY)
    seed.stop()

    config = "c.EDAGateway.history_retention_days = 5\n"
    first = GatewayServer(tmp_path, extra_config=config).start()
    try:
        kid = first.start_kernel("alice")
        kc = first.kernel_ws(kid, "alice")
        assert kc.run("6 * 7").result == "42"
        kc.close()
    finally:
        first.stop()  # kernels are shut down on the way out: that is history too

    second = GatewayServer(tmp_path, extra_config=config).start()
    try:
        r = second.get("/advanced-eda/api/admin/events?since=0&limit=100", "admin")
        assert r.status_code == 200, r.text
        events = r.json()["events"]
        mine = [(e["user"], e["kind"]) for e in events if e["kernel_id"] == kid]
        assert ("alice", "kernel.started") in mine
        assert ("alice", "execution.admitted") in mine
        assert ("alice", "kernel.stopped") in mine  # recorded during shutdown, flushed before exit
        users = {e["user"] for e in events}
        assert "carol" in users and "ancient" not in users
    finally:
        second.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events WHERE user = 'ancient'").fetchone() == (0,)


def test_refusals_are_one_counted_row_per_user_and_minute(store):
    t0 = 1_800_000_000.0  # a minute boundary
    for i in range(2000):
        store.record_count(h.EXECUTION_REFUSED, "alice", at=t0 + i * 0.02, kernel_id="k1",
                           source="notebook", reason="per_minute")
    store.record_count(h.EXECUTION_REFUSED, "alice", at=t0 + 61, kernel_id="k1", source="notebook",
                       reason="per_minute")
    store.flush()
    rows = store.events(kinds=[h.EXECUTION_REFUSED])
    assert [(r["at"], r["count"]) for r in rows] == [(t0 + 60, 1), (t0, 2000)]
    assert store.summary(since=t0)["alice"]["refusals"] == {"per_minute": 2001}
    series = store.series("alice", t0, t0 + 120, 60)["alice"]
    assert [p["refusals"] for p in series] == [2000, 1]


def test_row_cap_is_per_user_so_one_user_cannot_evict_another(tmp_path):
    s = HistoryStore(str(tmp_path / "h.sqlite"), max_rows=10, batch_delay=0.01)
    s.start()
    try:
        for i in range(5):
            s.record_event(h.LOGIN, "bob", at=1_800_000_000.0 + i)
        s.flush()
        for i in range(3000):
            s.record_event(h.EXECUTION_ADMITTED, "alice", at=1_800_001_000.0 + i)
        s.flush()
        assert len(s.events(user="bob", limit=100)) == 5
        alice = s.events(user="alice", limit=100)
        assert len(alice) == 10 and alice[-1]["at"] == 1_800_001_000.0 + 2990
    finally:
        s.stop()


def test_a_database_from_before_counted_rows_is_upgraded(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, ts REAL NOT NULL, user TEXT NOT NULL, "
                 "kind TEXT NOT NULL, kernel_id TEXT, source TEXT, reason TEXT, details TEXT)")
    conn.execute("INSERT INTO events (ts, user, kind) VALUES (?, 'bob', 'login')", (time.time(),))
    conn.commit()
    conn.close()
    s = HistoryStore(str(path), batch_delay=0.01)
    s.start()
    try:
        assert s.events()[0]["count"] == 1
    finally:
        s.stop()


def test_rows_name_their_server_and_an_older_file_gains_the_column(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)  # the schema before rows named their server
    conn.executescript(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, ts REAL NOT NULL, user TEXT NOT NULL, kind TEXT NOT NULL, "
        "kernel_id TEXT, source TEXT, reason TEXT, details TEXT, count INTEGER NOT NULL DEFAULT 1);"
        "CREATE TABLE samples (id INTEGER PRIMARY KEY, ts REAL NOT NULL, user TEXT NOT NULL, kernels INTEGER NOT NULL, "
        "memory_bytes INTEGER, cpu_percent REAL);"
    )
    t0 = 1_800_000_000.0
    conn.execute("INSERT INTO events (ts, user, kind) VALUES (?, 'bob', 'login')", (t0,))
    conn.execute("INSERT INTO samples (ts, user, kernels) VALUES (?, 'bob', 1)", (t0,))
    conn.commit()
    conn.close()
    s = HistoryStore(str(path), server="east", batch_delay=0.01)
    s.start()
    try:
        s.record_event(h.LOGIN, "alice", at=t0 + 1)
        s.record_count(h.EXECUTION_REFUSED, "bob", at=t0 + 2, reason="per_minute")
        s.record_samples([Sample("alice", 1, 10, 1.0, t0 + 3)])
        assert s.flush()
        assert [(e["user"], e["kind"], e["server"]) for e in s.events()] == [
            ("alice", h.LOGIN, "east"), ("bob", h.EXECUTION_REFUSED, "east"), ("bob", h.LOGIN, "")]
        assert s.summary(since=t0)["bob"]["servers"] == ["", "east"]  # the old row names no server
    finally:
        s.stop()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT user, server FROM samples ORDER BY id").fetchall() == [("bob", ""), ("alice", "east")]
