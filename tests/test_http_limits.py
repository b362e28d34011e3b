"""Slow and heavy clients (eda_gateway/http_limits.py): half-open connections are closed within
EDAGateway.request_read_timeout, and parallel large uploads cannot take the server's memory."""

import base64
import json
import os
import socket
import threading
import time

import psutil
import pytest

from harness import GatewayServer

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

READ_TIMEOUT = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = GatewayServer(
        tmp_path_factory.mktemp("http"),
        extra_config=f"c.EDAGateway.request_read_timeout = {READ_TIMEOUT}\nc.EDASandbox.max_disk_mb = 0\n",
    )
    yield srv.start()
    srv.stop()


def seconds_until_closed(server, data: bytes, limit: float = 30) -> float:
    """Send ``data`` and nothing more; how long until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(data)
        start = time.monotonic()
        s.settimeout(limit)
        while True:
            try:
                if not s.recv(65536):
                    return time.monotonic() - start
            except ConnectionResetError:
                return time.monotonic() - start
            except socket.timeout:
                raise AssertionError(f"the server kept the connection open for {limit}s") from None


def test_unfinished_request_line_is_closed_within_the_timeout(server):
    elapsed = seconds_until_closed(server, b"GET /api/conte")
    assert elapsed < READ_TIMEOUT + 3, elapsed


def test_body_that_stops_arriving_is_closed_within_the_timeout(server):
    head = (f"PUT /api/contents/slow.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: token {server.token_of('alice')}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n").encode()
    elapsed = seconds_until_closed(server, head + b'{"type": "file", "fo')
    assert elapsed < READ_TIMEOUT + 3, elapsed
    assert not (server.root_dir / "alice" / "slow.txt").exists()


def test_requests_still_work(server):
    assert server.get("/api/status").status_code == 200


def upload_body(raw: bytes) -> bytes:
    return json.dumps({"type": "file", "format": "base64", "content": base64.b64encode(raw).decode()}).encode()


def test_parallel_large_uploads_keep_memory_bounded(server):
    raw = os.urandom(71 * 1024 * 1024)
    body = upload_body(raw)  # ~95 MB, as JupyterLab's single-request upload would send
    assert len(body) > 94 * 1024 * 1024
    proc = psutil.Process(server.proc.pid)
    idle = proc.memory_info().rss
    peak = [idle]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            done.wait(0.02)

    answers = {}

    def upload(user):
        answers[user] = server.put(f"/api/contents/big-{user}.bin", user, data=body,
                                   headers={"Content-Type": "application/json"}, timeout=120)

    sampler = threading.Thread(target=sample)
    sampler.start()
    users = ["alice", "bob", "carol", "admin"]
    threads = [threading.Thread(target=upload, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    sampler.join()

    grown_mb = (peak[0] - idle) / 2**20
    print(f"idle RSS {idle / 2**20:.0f} MiB, peak {peak[0] / 2**20:.0f} MiB (+{grown_mb:.0f} MiB)")
    assert grown_mb < 300, grown_mb
    codes = {u: r.status_code for u, r in answers.items()}
    assert 201 in codes.values(), codes
    for user, r in answers.items():
        where = server.root_dir if user == "admin" else server.root_dir / user
        if r.status_code == 201:
            assert (where / f"big-{user}.bin").read_bytes() == raw
            continue
        assert r.status_code in (429, 503), codes
        assert int(r.headers["Retry-After"]) > 0
        assert "max_body_bytes_in_flight" in r.json()["message"]
        assert not where.exists() or not any(p.name.endswith(".bin") or "big-" in p.name
                                             for p in where.iterdir()), list(where.iterdir())


class HeldUpload:
    """A large upload whose body keeps trickling in (never stalled, never finished): it holds
    its share of the body budget from its headers on, until the socket closes."""

    def __init__(self, server, user, size):
        self.sock = socket.create_connection(("127.0.0.1", server.port))
        self.sock.sendall((f"PUT /api/contents/held.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"Authorization: token {server.token_of(user)}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {size}\r\nExpect: 100-continue\r\n\r\n").encode())
        # tornado sends 100 Continue once the guard has seen the headers: the share is reserved
        self.sock.settimeout(30)
        assert self.sock.recv(100).startswith(b"HTTP/1.1 100")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle)
        self.thread.start()

    def _trickle(self):
        while not self.stop.wait(READ_TIMEOUT / 4):
            self.sock.sendall(b" ")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.sock.close()


def big_body(size_mib: int) -> bytes:
    return upload_body(os.urandom(size_mib * 2**20))


def put_big(server, user, name, size_mib=None, body: bytes | None = None):
    """PUT a large file; ``body`` made beforehand when a HeldUpload trickles meanwhile: making
    it holds the GIL for seconds on a busy machine, and the trickle would stall."""
    body = body if body is not None else big_body(size_mib)
    return server.put(f"/api/contents/{name}", user, data=body, headers={"Content-Type": "application/json"})


def test_a_second_large_body_of_the_same_user_is_refused_429_until_the_first_ends(server):
    second = big_body(2)
    with HeldUpload(server, "bob", 99 * 2**20):
        r = put_big(server, "bob", "second.bin", body=second)
        assert r.status_code == 429, (r.status_code, r.text)
        assert int(r.headers["Retry-After"]) > 0
        assert "max_body_bytes_in_flight_per_user" in r.json()["message"]
        assert r.headers["Content-Type"].startswith("application/json")
    assert not (server.root_dir / "bob" / "second.bin").exists()
    # the held upload's socket is gone: its share is free again
    deadline = time.monotonic() + 10
    while (r := put_big(server, "bob", "second.bin", 2)).status_code == 429 and time.monotonic() < deadline:
        pass
    assert r.status_code == 201, (r.status_code, r.text)


def test_large_bodies_of_several_users_share_the_server_budget_503(server):
    other = big_body(40)
    with HeldUpload(server, "alice", 99 * 2**20):
        r = put_big(server, "carol", "other.bin", body=other)
        assert r.status_code == 503, (r.status_code, r.text)
        assert int(r.headers["Retry-After"]) > 0
        assert "max_body_bytes_in_flight" in r.json()["message"]
        # small requests are never counted
        assert server.get("/api/contents", "carol").status_code == 200
    assert not (server.root_dir / "carol" / "other.bin").exists()


def test_chunked_upload_still_works(server):
    raw = os.urandom(3 * 1024 * 1024 + 12345)
    pieces = [raw[i:i + 2**20] for i in range(0, len(raw), 2**20)]
    for number, piece in enumerate(pieces, start=1):
        chunk = -1 if number == len(pieces) else number
        r = server.put("/api/contents/chunked.bin", "carol", json={
            "type": "file", "format": "base64", "chunk": chunk, "content": base64.b64encode(piece).decode()})
        assert r.status_code in (200, 201), (r.status_code, r.text)
    assert (server.root_dir / "carol" / "chunked.bin").read_bytes() == raw


def test_budget_arithmetic():
    from eda_gateway.http_limits import BodyBudget

    budget = BodyBudget(total_bytes=100, per_caller_bytes=60)
    assert budget.reserve("a", 90) is None  # alone, any allowed size passes
    assert budget.reserve("a", 5).status == 429
    assert budget.reserve("b", 20).status == 503
    assert budget.reserve("b", 10) is None
    budget.release("a", 90)
    assert budget.reserve("b", 50) is None and budget.total == 60
