"""Usage history in PostgreSQL: a real server (tests/pg_harness.py), real writer threads, and
two real eda_gateway servers sharing one history."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from eda_gateway import history as h
from eda_gateway.history import HistoryStore, Sample
from harness import GatewayServer, free_port, start_failure
from pg_harness import PASSWORD, CommitCuttingProxy, PostgresServer, require_postgres

pytestmark = pytest.mark.e2e  # starts a PostgreSQL server (and eda_gateway servers)

DAY = 86400.0
T0 = 1_800_000_000.0  # a round minute


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    bindir = require_postgres()
    with PostgresServer(tmp_path_factory.mktemp("pg"), bindir) as server:
        yield server


@pytest.fixture
def url(pg):
    return pg.create_database()  # each test its own database


@pytest.fixture
def stores(url):
    """``stores(server, **options)``: started HistoryStores on the test's database, stopped after."""
    started = []

    def make(server: str = "east", **options) -> HistoryStore:
        store = HistoryStore(url, server=server, batch_delay=0.01, **options)
        store.start()
        started.append(store)
        return store

    yield make
    for store in started:
        store.stop()


def test_events_and_samples_are_recorded_and_read(stores):
    store = stores("east")
    store.record_event(h.EXECUTION_ADMITTED, "alice", at=T0 + 1, kernel_id="k1", source="notebook")
    store.record_event(h.EXECUTION_ADMITTED, "alice", at=T0 + 2, kernel_id="k1", source="api")
    store.record_event(h.EXECUTION_REFUSED, "alice", at=T0 + 65, kernel_id="k2", reason="concurrent")
    store.record_event(h.VERDICT, "bob", at=T0 + 70, kernel_id="k3", reason="MemoryLimitExceeded",
                       details={"killed": True})
    store.record_samples([Sample("alice", 1, 100, 10.0, T0 + 5), Sample("alice", 2, 3 * 2**32, 30.0, T0 + 50),
                          Sample("bob", 1, None, None, T0 + 61)])
    assert store.flush()

    events = store.events(user="alice")
    assert [e["kind"] for e in events] == [h.EXECUTION_REFUSED, h.EXECUTION_ADMITTED, h.EXECUTION_ADMITTED]
    assert events[0]["at"] == T0 + 65 and events[-1]["source"] == "notebook"  # epoch seconds kept exactly
    assert {e["server"] for e in store.events()} == {"east"}
    assert store.events(kinds=[h.VERDICT])[0]["details"] == {"killed": True}

    summary = store.summary(since=T0)
    assert summary["alice"]["executions"] == 2 and summary["alice"]["refusals"] == {"concurrent": 1}
    assert summary["bob"]["verdicts"] == {"MemoryLimitExceeded": 1} and summary["bob"]["servers"] == ["east"]

    alice = store.series(None, T0, T0 + 180, 60)["alice"]
    assert [p["executions"] for p in alice] == [2, 0, 0] and [p["refusals"] for p in alice] == [0, 1, 0]
    assert alice[0]["peak_memory_bytes"] == 3 * 2**32  # BIGINT: more than 4 GiB
    assert alice[0]["cpu_percent"] == 20.0 and alice[0]["kernels"] == 2
    # a bucket is the floor of (ts - since) / bucket, not its rounding: T0 + 50 is in bucket 0
    assert [p["peak_memory_bytes"] for p in store.series("alice", T0, T0 + 120, 60)["alice"]] == [3 * 2**32, None]


def test_refusals_are_counted_rows_per_server(stores):
    east, west = stores("east"), stores("west")
    for i in range(300):
        east.record_count(h.EXECUTION_REFUSED, "alice", at=T0 + i * 0.1, kernel_id="k1", reason="per_minute")
    for _ in range(7):
        west.record_count(h.EXECUTION_REFUSED, "alice", at=T0 + 30, kernel_id="k9", reason="per_minute")
    east.record_count(h.EXECUTION_REFUSED, "alice", at=T0 + 61, kernel_id="k1", reason="per_minute")
    assert east.flush() and west.flush()
    rows = west.events(kinds=[h.EXECUTION_REFUSED])
    assert sorted((r["server"], r["at"], r["count"]) for r in rows) == [
        ("east", T0, 300), ("east", T0 + 60, 1), ("west", T0, 7)]
    summary = east.summary(since=T0)["alice"]
    assert summary["refusals"] == {"per_minute": 308} and summary["servers"] == ["east", "west"]


def test_retention_purges_every_servers_old_rows(url, stores):
    now = time.time()
    east, west = stores("east", retention_days=30), stores("west", retention_days=30)
    east.record_event(h.LOGIN, "old", at=now - 40 * DAY)
    west.record_samples([Sample("old", 1, 1, 1.0, now - 31 * DAY)])
    west.record_event(h.LOGIN, "recent", at=now - 29 * DAY)
    assert east.flush() and west.flush()
    assert east.purge() == 2  # the periodic purge, run now: west's old row too
    assert [(e["user"], e["server"]) for e in west.events()] == [("recent", "west")]

    # and at start-up: a store opened with a shorter retention drops what it no longer keeps
    stores("north", retention_days=7)
    assert east.events() == []


def test_row_cap_is_per_user(stores):
    store = stores("east", max_rows=10)
    for i in range(5):
        store.record_event(h.LOGIN, "bob", at=T0 + i)
    store.record_samples([Sample("bob", 1, 1, 1.0, T0 + i) for i in range(20)])
    assert store.flush()
    for i in range(3000):
        store.record_event(h.EXECUTION_ADMITTED, "alice", at=T0 + 1000 + i)
    assert store.flush()
    assert len(store.events(user="bob", limit=100)) == 5
    alice = store.events(user="alice", limit=100)
    assert len(alice) == 10 and alice[-1]["at"] == T0 + 1000 + 2990
    series = store.series("bob", T0, T0 + 20, 1)["bob"]
    assert [p["kernels"] for p in series] == [None] * 10 + [1] * 10  # the newest 10 samples


def test_queue_overflow_is_counted(url):
    store = HistoryStore(url, max_pending=30, batch_delay=0.01)
    for i in range(40):  # the writer is not running yet: the queue holds 30
        store.record_event(h.EXECUTION_ADMITTED, "alice", at=T0 + i)
    assert store.dropped == 10
    store.start()
    try:
        assert store.flush()
        assert len(store.events(limit=100)) == 30
    finally:
        store.stop()


def test_servers_starting_together_and_writing_at_once_lose_nothing(url):
    # two servers' writers on one database: the schema is created once, the row caps of
    # one user's rows (whoever wrote them) take turns with the other's inserts
    east = HistoryStore(url, server="east", max_rows=50, batch_delay=0.001)
    west = HistoryStore(url, server="west", max_rows=50, batch_delay=0.001)
    starts = [threading.Thread(target=s.start) for s in (east, west)]
    for t in starts:
        t.start()
    for t in starts:
        t.join()
    assert east.running and west.running, "a writer failed to start beside the other"
    try:
        def write(store: HistoryStore) -> None:
            for i in range(600):
                store.record_event(h.EXECUTION_ADMITTED, f"user{i % 3}", at=T0 + i)  # capped: 50 rows each
                store.record_event(h.LOGIN, f"{store.server}-{i}", at=T0 + i)  # one row per user: all kept
                store.record_count(h.EXECUTION_REFUSED, "carol", at=T0, kernel_id="k", reason="per_minute")
                if i % 50 == 0:
                    time.sleep(0.002)  # several batches, interleaved with the other server's

        writers = [threading.Thread(target=write, args=(s,)) for s in (east, west)]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        assert east.flush() and west.flush()
        assert east.dropped == west.dropped == 0
        logins = east.events(kinds=[h.LOGIN], limit=5000)
        assert len(logins) == 1200
        assert sorted({e["server"] for e in logins}) == ["east", "west"]
        for user in ("user0", "user1", "user2"):
            assert len(east.events(user=user, limit=5000)) == 50
        refused = west.events(kinds=[h.EXECUTION_REFUSED])
        assert sorted((r["server"], r["count"]) for r in refused) == [("east", 600), ("west", 600)]
    finally:
        east.stop()
        west.stop()


def test_unreachable_at_start_names_the_host_not_the_password(pg, url):
    port = free_port()  # nobody listens there
    store = HistoryStore(f"postgresql://eda:{PASSWORD}@127.0.0.1:{port}/history")
    with pytest.raises(RuntimeError) as refused:
        store.start()
    message = str(refused.value)
    assert f"127.0.0.1:{port}" in message and PASSWORD not in message
    assert "eda:***@" in message

    wrong = "not-the-" + PASSWORD
    store = HistoryStore(pg.url(url.rsplit("/", 1)[1], password=wrong))
    with pytest.raises(RuntimeError) as refused:
        store.start()
    message = str(refused.value)
    assert "password authentication failed" in message and wrong not in message


def test_the_writer_waits_out_an_outage_and_reconnects(pg, url, caplog):
    store = HistoryStore(url, server="east", max_pending=5, batch_delay=0.01, retry_delay=0.05, max_retry_delay=0.2)
    waits: list[float] = []
    back_off = store._back_off

    def counted(delay: float) -> None:  # the real wait, noted
        waits.append(delay)
        back_off(delay)

    store._back_off = counted
    caplog.set_level(logging.INFO, logger="eda_gateway.history")
    store.start()
    try:
        store.record_event(h.LOGIN, "before", at=T0)
        assert store.flush()
        pg.stop()
        try:
            store.record_event(h.LOGIN, "during", at=T0 + 1)  # the writer takes it, fails, waits
            deadline = time.monotonic() + 30
            while not waits and time.monotonic() < deadline:
                time.sleep(0.01)
            assert waits, "the writer never noticed the outage"
            for i in range(8):  # the writer holds its batch: 5 fit in the queue, 3 are dropped
                store.record_event(h.LOGIN, f"queued{i}", at=T0 + 2 + i)
            assert store.dropped == 3
        finally:
            pg.start()
        assert store.flush(timeout=30)
        users = {e["user"] for e in store.events(limit=100)}
        assert users == {"before", "during", "queued0", "queued1", "queued2", "queued3", "queued4"}
    finally:
        store.stop()
    # backing off, never spinning: each wait doubles the last, up to max_retry_delay
    expected = [min(0.05 * 2**i, 0.2) for i in range(len(waits))]
    assert waits == pytest.approx(expected)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "unreachable" in text and "is back" in text and PASSWORD not in text


def test_a_batch_whose_commit_answer_is_lost_is_written_once(pg, url, caplog):
    """The connection goes during COMMIT after the server committed: the writer cannot tell,
    reconnects and retries its batch, which must not be written twice."""
    proxy = CommitCuttingProxy(pg.port)
    store = HistoryStore(proxy.url(url), server="east", batch_delay=0.01, retry_delay=0.05)
    caplog.set_level(logging.INFO, logger="eda_gateway.history")
    store.start()
    try:
        store.record_event(h.LOGIN, "before", at=T0)
        assert store.flush()
        proxy.cut_next_commit()
        store.record_event(h.LOGIN, "cut", at=T0 + 1)
        store.record_samples([Sample("cut", 1, 100, 1.0, T0 + 1)])
        assert store.flush(timeout=30)
        assert proxy.cuts == 1
        store.record_event(h.LOGIN, "after", at=T0 + 2)
        assert store.flush()
        assert sorted(e["user"] for e in store.events(limit=100)) == ["after", "before", "cut"]
        with store.db.reader() as conn:
            assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 1
            # the batch ids have done their job: only the last batch's is left
            assert conn.execute("SELECT count(*) FROM batches").fetchone()[0] == 1
    finally:
        store.stop()
        proxy.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "unreachable" in text and "not written again" in text


# --- two eda_gateway servers, one history -----------------------------------------------


def test_two_servers_share_one_history(tmp_path, url):
    servers = {}
    try:
        for name in ("east", "west"):
            config = f"c.EDAGateway.history_db = {url!r}\nc.EDAGateway.server_name = {name!r}\n"
            servers[name] = GatewayServer(tmp_path / name, extra_config=config).start()
        kernels = {}
        for name, srv in servers.items():
            kernels[name] = srv.start_kernel("alice")
            kc = srv.kernel_ws(kernels[name], "alice")
            assert kc.run("6 * 7").result == "42"
            kc.close()

        east = servers["east"]
        r = east.get("/advanced-eda/api/admin/events?since=0&limit=1000", "admin")
        assert r.status_code == 200, r.text
        events = r.json()["events"]
        for name, kid in kernels.items():  # west's rows too, each naming the server that wrote it
            mine = {(e["server"], e["kind"]) for e in events if e["kernel_id"] == kid}
            assert {(name, "kernel.started"), (name, "execution.admitted")} <= mine, (name, mine)
            assert {server for server, _ in mine} == {name}
        r = east.get(f"/advanced-eda/api/admin/history?since={time.time() - 3600:.0f}&bucket=1h", "admin")
        assert r.status_code == 200, r.text
        alice = next(u for u in r.json()["users"] if u["user"] == "alice")
        assert alice["servers"] == ["east", "west"] and alice["totals"]["executions"] == 2
    finally:
        for srv in servers.values():
            srv.stop()
    for name, srv in servers.items():
        assert PASSWORD not in srv.log(), f"{name}'s log shows the database password"
        # shared on purpose: no claim (lock file) on a URL, nor folders named after it
        assert not (srv.tmp / "postgresql:").exists()


def test_a_server_refuses_to_start_without_its_database(tmp_path):
    port = free_port()
    config = f'c.EDAGateway.history_db = "postgresql://eda:{PASSWORD}@127.0.0.1:{port}/history"\n'
    code, log = start_failure(tmp_path, config)
    assert code != 0
    assert "EDAGateway.history_db" in log and f"127.0.0.1:{port}" in log
    assert PASSWORD not in log
