"""A request body that keeps arriving is not taken for stalled while the loop was busy.

The server decodes large bodies on its event loop (jupyter_server's contents PUT): meanwhile a
slow upload's bytes wait in its socket, and reach data_received a loop turn or two after the
stall check that was due during the busy time (tornado reads, then resolves a future).
Seen as a trickling upload closed while another user's 40 MiB upload was decoded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import time
from types import SimpleNamespace

from eda_gateway.http_limits import BodyBudget, GuardedDelegate

READ_TIMEOUT = 0.5


def run_alone(coroutine):
    # in a thread of its own: other tests' plugins (playwright) may leave a loop running in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def guarded(closed: list) -> GuardedDelegate:
    conn = SimpleNamespace(close=lambda: closed.append(True))
    delegate = GuardedDelegate(None, conn, BodyBudget(100, 100), READ_TIMEOUT, 1 << 20, "127.0.0.1",
                               logging.getLogger("test"))
    delegate.refusal = SimpleNamespace()  # data_received stops at the guard: no inner delegate here
    return delegate


async def until(condition, what: str, timeout: float = 30) -> None:
    """Loop turns until ``condition()`` holds (a deadline only against a hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def trickle_through_a_busy_loop(block_seconds: float) -> list:
    loop = asyncio.get_running_loop()
    closed: list = []
    delegate = guarded(closed)
    client, server = socket.socketpair()
    server.setblocking(False)
    received: list = []

    def hand_on():
        delegate.data_received(b" ")
        received.append(True)

    def readable():  # tornado's IOStream reads, then its future hands the bytes on a turn later
        server.recv(100)
        loop.call_soon(hand_on)

    loop.add_reader(server.fileno(), readable)
    delegate._watch_body()
    client.send(b" ")
    await until(lambda: received, "the first byte reached data_received")
    for check in ("the late check", "the check after it"):
        due = delegate._check_due
        if check == "the late check":
            client.send(b" ")  # the client keeps sending while ...
            time.sleep(block_seconds)  # ... the loop decodes someone's large body: the check falls due
        await until(lambda: closed or delegate._check_due != due, f"{check} ran")
    delegate._stop_watching()
    loop.remove_reader(server.fileno())
    client.close()
    server.close()
    return closed


def test_bytes_that_came_while_the_loop_was_busy_keep_the_upload_open():
    assert run_alone(trickle_through_a_busy_loop(READ_TIMEOUT * 3)) == []


async def stall() -> list:
    closed: list = []
    delegate = guarded(closed)
    delegate._watch_body()
    await until(lambda: closed, "the stalled body was closed")
    delegate._stop_watching()
    return closed


def test_a_body_that_stops_arriving_is_still_closed():
    assert run_alone(stall()) == [True]
