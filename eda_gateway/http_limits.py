"""Slow and heavy HTTP clients: read timeouts, and a budget of request bodies read at once.

tornado's HTTPServer waits an hour for a request's headers and forever for a body that stops
arriving, and buffers every body whole before any handler runs (jupyter_server's handlers do
not stream): a thousand half-open sockets, or four parallel 95 MB uploads, and the shared
server runs out of file descriptors or memory. This module sits between the HTTPServer and the
web application (``install``), where a request's headers are known but its body is not read yet:

- headers must be complete within ``read_timeout`` seconds (tornado's header timeout, which also
  closes keep-alive connections idle that long); a body whose bytes stop arriving for that long
  is closed too (tornado's own ``body_timeout`` bounds the whole body, which would cut a large
  upload on a slow but live link). A check that runs late, the loop busy meanwhile, looks again
  once the bytes that came in the meantime had their turn;
- a body is read only if its size fits the budget (``BodyBudget``): per credential and in total.
  A body beyond it is drained without being kept, then answered 429 (the caller's share) or
  503 (the server's), with Retry-After and a JSON message; no handler runs, nothing is written.

What an admitted upload costs is cut too: tornado's second copy of the body is dropped once the
body is joined (``GuardedDelegate``), and the contents API lets go of the raw body while it
decodes the JSON (``lean_contents_bodies``); its base64 is decoded piecewise
(eda_gateway/contents.py). A 95 MB upload then peaks at about twice its size, not four times.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass

from jupyter_server.services.contents.handlers import ContentsHandler
from tornado import httputil, web
from tornado.ioloop import IOLoop

MIB = 1024 * 1024
RETRY_AFTER_SECONDS = 5
# A stall check that runs this much after its time found the loop busy, not the client quiet.
LATE_CHECK_SECONDS = 0.25


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    message: str


class BodyBudget:
    """Bytes of request bodies being received or handled at once, per caller and in total."""

    def __init__(self, total_bytes: int, per_caller_bytes: int):
        self.total_bytes = total_bytes
        self.per_caller_bytes = per_caller_bytes
        self._held: dict[str, int] = {}
        self._total = 0
        self._lock = threading.Lock()

    def reserve(self, caller: str, size: int) -> Refusal | None:
        """Take ``size`` bytes for ``caller``; a Refusal (nothing taken) if they do not fit."""
        with self._lock:
            held = self._held.get(caller, 0)
            if held and held + size > self.per_caller_bytes:
                # alone, any body up to the server's max_body_size passes: one at a time is the cap
                return Refusal(429, "Too Many Requests",
                               f"another large request body of yours ({held / MIB:.0f} MiB) is still being "
                               f"received; send one at a time (EDAGateway.max_body_bytes_in_flight_per_user "
                               f"= {self.per_caller_bytes / MIB:.0f} MiB), or upload in chunks")
            if self._total and self._total + size > self.total_bytes:
                return Refusal(503, "Service Unavailable",
                               f"the server is receiving {self._total / MIB:.0f} MiB of request bodies already "
                               f"(EDAGateway.max_body_bytes_in_flight = {self.total_bytes / MIB:.0f} MiB); "
                               "try again shortly, or upload in chunks")
            self._held[caller] = held + size
            self._total += size
            return None

    def release(self, caller: str, size: int) -> None:
        with self._lock:
            left = self._held.get(caller, 0) - size
            if left > 0:
                self._held[caller] = left
            else:
                self._held.pop(caller, None)
            self._total -= size

    @property
    def total(self) -> int:
        return self._total


def caller_of(headers: httputil.HTTPHeaders, remote_ip: str | None) -> str:
    """Who sends this request, as far as its headers tell before any authentication: its token
    or login cookie (hashed: never kept as such), else its address. Unverified: a client that
    varies it escapes its own share, never the total."""
    credential = headers.get("Authorization", "")
    if not credential:
        cookies = headers.get("Cookie", "")
        credential = ";".join(sorted(c.strip() for c in cookies.split(";") if c.strip().startswith("username-")))
    if not credential:
        credential = f"address:{remote_ip}"
    return hashlib.sha256(credential.encode("utf-8", "replace")).hexdigest()[:16]


def body_size(headers: httputil.HTTPHeaders, max_body_size: int) -> int:
    """The bytes a request's body will take: its Content-Length; a chunked body of unknown size
    counts as the largest allowed."""
    if "Content-Length" in headers:
        try:
            return max(0, int(headers["Content-Length"]))
        except ValueError:
            return 0  # tornado answers 400 itself
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        return max_body_size
    return 0


class GuardedDelegate(httputil.HTTPMessageDelegate):
    """Wraps the web application's delegate for one request (see the module docstring)."""

    def __init__(self, inner, request_conn, budget: BodyBudget, read_timeout: float, max_body_size: int,
                 remote_ip: str | None, log):
        self.inner = inner
        self.conn = request_conn
        self.budget = budget
        self.read_timeout = read_timeout
        self.max_body_size = max_body_size
        self.remote_ip = remote_ip
        self.log = log
        self.refusal: Refusal | None = None
        self.reserved: tuple[str, int] | None = None
        self._timer = None
        self._check_due = 0.0
        self._last_data = 0.0

    # --- tornado's delegate interface -------------------------------------------

    def headers_received(self, start_line, headers):
        size = body_size(headers, self.max_body_size)
        if size:
            self._watch_body()
            # tornado answers bodies over max_body_size itself; small ones are not worth counting
            if size <= self.max_body_size and size > MIB:
                caller = caller_of(headers, self.remote_ip)
                self.refusal = self.budget.reserve(caller, size)
                if self.refusal is None:
                    self.reserved = (caller, size)
                    self._release_on_finish()
                else:
                    self.log.warning("eda_gateway: refused a %s MiB request body (%s %s) from %s: %s",
                                     size // MIB, start_line.method, start_line.path, self.remote_ip,
                                     self.refusal.message)
                    return None  # drained below, never kept
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk):
        self._last_data = IOLoop.current().time()
        if self.refusal is not None:
            return None
        return self.inner.data_received(chunk)

    def finish(self):
        self._stop_watching()
        if self.refusal is not None:
            self._answer(self.refusal)
            return
        self.inner.finish()
        self._drop_buffered_copy()

    def on_connection_close(self):
        self._stop_watching()
        self._release()
        if self.refusal is None:
            self.inner.on_connection_close()

    # --- the budget ----------------------------------------------------------------

    def _release_on_finish(self) -> None:
        finish = self.conn.finish

        def finish_and_release():
            try:
                return finish()
            finally:
                self._release()

        self.conn.finish = finish_and_release  # the response is out: the handler let go of the body

    def _release(self) -> None:
        if self.reserved is not None:
            self.budget.release(*self.reserved)
            self.reserved = None

    def _drop_buffered_copy(self) -> None:
        """tornado keeps the chunks it joined into ``request.body`` until the request ends:
        a second copy of the whole body, held while the handler decodes it."""
        delegate = self.inner
        for _ in range(4):
            if delegate is None:
                return
            if isinstance(getattr(delegate, "chunks", None), bytearray):
                delegate.chunks = bytearray()
                return
            delegate = getattr(delegate, "delegate", None)

    def _answer(self, refusal: Refusal) -> None:
        body = json.dumps({"message": refusal.message, "reason": refusal.reason}).encode()
        headers = httputil.HTTPHeaders({
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Retry-After": str(RETRY_AFTER_SECONDS),
        })
        self.conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", refusal.status, refusal.reason),
                                headers, body)
        self.conn.finish()

    # --- a body that stops arriving ---------------------------------------------------

    def _watch_body(self) -> None:
        self._last_data = IOLoop.current().time()
        self._check_in(self.read_timeout)

    def _check_in(self, delay: float) -> None:
        loop = IOLoop.current()
        self._check_due = loop.time() + delay
        self._timer = loop.call_later(delay, self._check_stalled)

    def _check_stalled(self) -> None:
        loop = IOLoop.current()
        now = loop.time()
        quiet = now - self._last_data
        if quiet < self.read_timeout:
            self._check_in(self.read_timeout - quiet)
            return
        if now - self._check_due > LATE_CHECK_SECONDS:
            # the loop was busy (a large body decoded on it): bytes that came meanwhile may
            # still be on their way to data_received; look again once they had their turn
            self._check_in(LATE_CHECK_SECONDS)
            return
        self._timer = None
        self.log.info("eda_gateway: closed a connection from %s: no request body bytes for %ss",
                      self.remote_ip, self.read_timeout)
        self.conn.close()

    def _stop_watching(self) -> None:
        if self._timer is not None:
            IOLoop.current().remove_timeout(self._timer)
            self._timer = None


def install(http_server, budget: BodyBudget, read_timeout: float, max_body_size: int, log) -> None:
    """Put the guard in front of ``http_server``'s application (a tornado HTTPServer, before or
    after it listens: connection parameters are read per connection)."""
    http_server.conn_params.header_timeout = read_timeout
    start_request = http_server.start_request

    def guarded_start_request(server_conn, request_conn):
        context = getattr(request_conn, "context", None)
        remote_ip = getattr(context, "remote_ip", None)
        return GuardedDelegate(start_request(server_conn, request_conn), request_conn, budget, read_timeout,
                               max_body_size, remote_ip, log)

    http_server.start_request = guarded_start_request


class LeanContentsHandler(ContentsHandler):
    """The contents API, holding a large request body once, not twice, while decoding it."""

    def get_json_body(self):
        body = self.request.body
        if len(body) <= MIB:
            return super().get_json_body()
        self.request.body = b""  # its decoded text replaces it: nothing reads it after this
        text = body.strip().decode("utf-8")
        del body
        try:
            return json.loads(text)
        except Exception as e:
            raise web.HTTPError(400, "Invalid JSON in body of request") from e


def lean_contents_bodies(web_app) -> int:
    """Serve jupyter_server's contents routes with ``LeanContentsHandler``; returns rules changed."""
    from .handlers.lab_management import walk_rules

    changed = 0
    for rule in walk_rules(web_app.default_router):
        if rule.target is ContentsHandler:
            rule.target = LeanContentsHandler
            changed += 1
    return changed
