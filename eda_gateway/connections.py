"""Who holds kernel websockets: a per-user cap and a server-wide budget.

Every kernel websocket holds 4 ZMQ sockets (and their file descriptors) for as long
as it is open, and the server's ZMQ context and fd limit are shared by everyone: a
user opening hundreds would break every other user's connections. So a user may hold
at most ``max_connections_per_user`` at once (all their kernels together), and the
server at most ``total``; one more is refused before it opens any socket.

A connection is counted from ``acquire`` until ``release`` (idempotent). A connection
whose release never came (a code path we did not foresee) cannot leak its place: each
holder passes an ``alive`` callable, and dead holders are dropped whenever a cap is
reached, before anyone is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

SETTING = "EDAGateway.max_connections_per_user"
TOTAL_SETTING = "EDAGateway.max_connections_total"


class ConnectionLimiter:
    def __init__(self, per_user: Callable[[str], int], total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._holders: dict[Hashable, tuple[str, Callable[[], bool]]] = {}
        self._by_user: dict[str, set[Hashable]] = {}

    def acquire(self, user: str, holder: Hashable, alive: Callable[[], bool]) -> str | None:
        """Count ``holder`` as one of ``user``'s connections; None, or why it is refused."""
        if holder in self._holders:
            return None
        cap = self.per_user(user)
        if len(self._by_user.get(user, ())) >= cap:
            self._drop_dead(self._by_user.get(user, set()))
        if len(self._holders) >= self.total:
            self._drop_dead(set(self._holders))
        held = len(self._by_user.get(user, ()))
        if held >= cap:
            return (f"{user} already has {held} kernel connections open, the most one user may have "
                    f"({SETTING} = {cap}): close one (another tab or client) and retry")
        if len(self._holders) >= self.total:
            return (f"the server has {len(self._holders)} kernel connections open, the most it serves "
                    f"({TOTAL_SETTING} = {self.total}): retry later")
        self._holders[holder] = (user, alive)
        self._by_user.setdefault(user, set()).add(holder)
        return None

    def release(self, holder: Hashable) -> None:
        entry = self._holders.pop(holder, None)
        if entry is None:
            return
        held = self._by_user.get(entry[0])
        if held is not None:
            held.discard(holder)
            if not held:
                del self._by_user[entry[0]]

    def count(self, user: str | None = None) -> int:
        if user is None:
            return len(self._holders)
        return len(self._by_user.get(user, ()))

    def _drop_dead(self, holders: set) -> None:
        for holder in list(holders):
            entry = self._holders.get(holder)
            if entry is None:
                continue
            try:
                alive = entry[1]()
            except Exception:
                alive = False
            if not alive:
                self.release(holder)
