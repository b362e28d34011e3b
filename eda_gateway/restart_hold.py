"""A kernel connection's messages wait while its kernel restarts, instead of being lost.

When a verdict kills a kernel (``MemoryLimitExceeded``, an execution killed past its
time limit) or the kernel dies or is restarted, the client hears at once that its
executions ended, and often sends the next one straight away. The old process may not
be gone yet: what reaches its sockets is lost with it, with no answer, ever. So from the
kill until the restart is over, a connection's incoming messages are held here, in order,
and then passed on as if they had just arrived (admission included: a held execution
holds no lease, so nothing ends it while it waits).

The restart is over when the kernel manager's ``ready`` future is a new one that is done
(jupyter_client makes a new one for every shutdown and start). A restart that never comes
(the kernel is shut down instead) ends the hold after ``max_wait`` seconds; the connection
usually closes first. At most ``max_messages`` wait, of ``max_bytes`` together: later ones
are refused (``refuse``), so a client cannot grow the server's memory while a kernel
restarts (a websocket message may be 10 MiB: 100 of them would be 1 GiB a connection).
"""

from __future__ import annotations

from collections.abc import Callable

POLL_SECONDS = 0.05


class RestartHold:
    def __init__(self, ready: Callable[[], object], release: Callable[[list], None],
                 refuse: Callable[[object], None], clock: Callable[[], float],
                 call_later: Callable[[float, Callable[[], None]], object],
                 max_messages: int = 100, max_bytes: int = 8 << 20, max_wait: float = 120.0) -> None:
        """``ready``: the kernel manager's current ready future; ``release(messages)``
        passes the held messages on; ``refuse(message)`` answers one that cannot wait."""
        self.ready = ready
        self.release = release
        self.refuse = refuse
        self.clock = clock
        self.call_later = call_later
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.max_wait = max_wait
        self._held: list | None = None  # None: not holding
        self._before = None  # the ready future when the hold began
        self._before_done = False
        self._since = 0.0
        self._bytes = 0

    @property
    def holding(self) -> bool:
        return self._held is not None

    def begin(self) -> None:
        """The kernel is being killed or restarted: hold what the client sends from now on."""
        if self._held is None:
            self._held, self._bytes = [], 0
            self._before = self.ready()
            self._before_done = _done(self._before)
            self._since = self.clock()
            self.call_later(POLL_SECONDS, self._check)

    def hold(self, message) -> None:
        assert self._held is not None, "hold() only while holding"
        size = len(message)  # a str or bytes frame
        if len(self._held) >= self.max_messages or self._bytes + size > self.max_bytes:
            self.refuse(message)
        else:
            self._held.append(message)
            self._bytes += size

    def drop(self) -> None:
        """The connection is closing: nothing is passed on."""
        self._held = None

    def _check(self) -> None:
        if self._held is None:
            return
        current = self.ready()
        # a new future (or the one pending when the hold began) that is done: a start ended
        restarted = _done(current) and (current is not self._before or not self._before_done)
        if restarted or self.clock() - self._since >= self.max_wait:
            held, self._held = self._held, None
            self.release(held)
        else:
            self.call_later(POLL_SECONDS, self._check)


def _done(future) -> bool:
    return future is not None and future.done()
