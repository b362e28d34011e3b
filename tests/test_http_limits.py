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


def test_one_user_sends_one_large_body_at_a_time(server):
    body = upload_body(os.urandom(30 * 1024 * 1024))
    answers = []
    barrier = threading.Barrier(3)

    def upload(i):
        barrier.wait()
        answers.append(server.put(f"/api/contents/mine-{i}.bin", "bob", data=body,
                                  headers={"Content-Type": "application/json"}, timeout=120))

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in answers)
    assert 201 in codes and 429 in codes, codes
    refused = next(r for r in answers if r.status_code == 429)
    assert "max_body_bytes_in_flight_per_user" in refused.json()["message"]


def test_chunked_upload_still_works(server):
    raw = os.urandom(3 * 1024 * 1024 + 12345)
    pieces = [raw[i:i + 2**20] for i in range(0, len(raw), 2**20)]
    for number, piece in enumerate(pieces, start=1):
        chunk = -1 if number == len(pieces) else number
        r = server.put("/api/contents/chunked.bin", "carol", json={
            "type": "file", "format": "base64", "chunk": chunk, "content": base64.b64encode(piece).decode()})
        assert r.status_code in (200, 201), (r.status_code, r.text)
    assert (server.root_dir / "carol" / "chunked.bin").read_bytes() == raw
