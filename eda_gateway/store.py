"""The admission store: primitives over per-user windows and kernel leases, no policy.

Rules (eda_gateway/rules.py) decide what a window or a lease means; a store only keeps
them. ``MemoryStore`` keeps them in this process; a shared store (Redis, PostgreSQL) for
several servers implements the same ``Store`` protocol, with each primitive atomic as its
docstring says (a Lua script or a transaction), so that no policy is re-implemented.

Times are the caller's monotonic clock (``now``): one clock for every call on one store.
A shared store keeps its own clock (the Redis server's) and answers in the caller's.

An admission is one ``apply`` of a few steps (``Add`` to a window, ``Hold`` a lease): all
or nothing, in one atomic step, so a shared store decides in one round trip.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict, deque
from typing import NamedTuple, Protocol, Union

# Idle users dropped per ``add`` (amortised clean-up, never a sweep of all users).
DROP_PER_CALL = 4


class WindowRead(NamedTuple):
    """A window's entries in its last ``window_seconds``."""

    count: int = 0
    oldest: float | None = None  # time of the oldest entry still in the window
    newest: float | None = None  # time of the newest entry (in the window or not)


class WindowAdd(NamedTuple):
    """The answer of ``Store.add``: the window after the call."""

    added: bool
    count: int  # entries in the window, the new one included
    oldest: float | None
    entry: object = None  # what ``Store.remove`` needs to take the new entry back


class LeaseHold(NamedTuple):
    """The answer of ``Store.hold``."""

    held: bool  # the kernel holds a lease of the user now
    new: bool  # this call took it (False: it was held already, or refused)
    count: int  # kernels holding a lease of the user after the call


class Add(NamedTuple):
    """A step of ``Store.apply``: ``add`` an entry to ``window``."""

    window: str
    limit: int
    seconds: float


class Hold(NamedTuple):
    """A step of ``Store.apply``: ``hold`` a lease for ``kernel_id``."""

    kernel_id: str
    limit: int


Step = Union[Add, Hold]
Outcome = Union[WindowAdd, LeaseHold]


def passed(outcome: Outcome) -> bool:
    return outcome.added if isinstance(outcome, WindowAdd) else outcome.held


class StoreUnavailable(Exception):
    """A shared store cannot be reached; ``retry_after`` seconds until it is tried again."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Store(Protocol):
    """Windows of timed entries and (user, kernel) leases, per user."""

    def add(self, user: str, window: str, limit: int, window_seconds: float, now: float) -> WindowAdd:
        """Add an entry at ``now`` to ``user``'s window named ``window`` if it holds fewer than
        ``limit`` entries newer than ``now - window_seconds``.

        Atomic: the count and the add are one step (no two callers both take the last slot).
        """

    def remove(self, user: str, window: str, entry: object) -> None:
        """Take back one entry ``add`` returned (a later rule refused the admission).

        Atomic; a no-op for an entry that is gone already.
        """

    def read(self, user: str, window: str, window_seconds: float, now: float) -> WindowRead:
        """Count, oldest and newest of ``user``'s window; changes nothing (a consistent snapshot)."""

    def hold(self, user: str, kernel_id: str, limit: int, now: float) -> LeaseHold:
        """Let ``kernel_id`` hold a lease of ``user``: it passes if it holds one already, else it
        takes one if the user's held kernels are fewer than ``limit``.

        Atomic: the check and the hold are one step.
        """

    def release(self, user: str, kernel_id: str, now: float) -> None:
        """The kernel holds no lease of ``user`` any more. Atomic; idempotent."""

    def held(self, user: str) -> frozenset[str]:
        """The kernels holding a lease of ``user``; changes nothing."""

    def apply(self, user: str, steps: list[Step], now: float) -> list[Outcome]:
        """Run ``steps`` in order as one atomic step: the first one refused ends the run and
        what the earlier ones recorded is taken back. The outcomes of the steps that ran
        (a refused one last). A shared store raises ``StoreUnavailable`` when unreachable."""


def apply_steps(store, user: str, steps: list[Step], now: float) -> list[Outcome]:
    """``Store.apply`` from a store's own primitives (atomic where they are: one event loop)."""
    outcomes: list[Outcome] = []
    undo = []
    for step in steps:
        if isinstance(step, Add):
            outcome = store.add(user, step.window, step.limit, step.seconds, now)
            if outcome.added:
                undo.append(lambda step=step, entry=outcome.entry: store.remove(user, step.window, entry))
        else:
            outcome = store.hold(user, step.kernel_id, step.limit, now)
            if outcome.new:
                undo.append(lambda step=step: store.release(user, step.kernel_id, now))
        outcomes.append(outcome)
        if not passed(outcome):
            for take_back in reversed(undo):
                take_back()
            break
    return outcomes


class _Window:
    __slots__ = ("name", "times", "seconds")

    def __init__(self, name: str, limit: int, seconds: float) -> None:
        self.name = name
        self.times: deque[float] = deque(maxlen=limit)  # the last ``limit`` entry times, oldest first
        self.seconds = seconds  # the length last asked for (for idle clean-up)


class _UserState:
    __slots__ = ("windows", "held")

    def __init__(self) -> None:
        self.windows: list[_Window] = []  # one or two: a list is smaller than a dict
        self.held: set[str] | None = None  # kernels holding a lease; None when empty

    def window(self, name: str) -> _Window | None:
        for window in self.windows:
            if window.name == name:
                return window
        return None


class MemoryStore:
    """In-process store: per active user and window, a deque of at most ``limit`` times.

    Only the last ``limit`` entries can decide whether a window is full, so memory is
    O(limit) per user window. Users are kept in last-touched order; each ``add`` drops a
    few users at the front whose windows are empty and who hold no lease, so idle users
    cost nothing and no call walks all users. Every method is synchronous: on one event
    loop each call is atomic.
    """

    def __init__(self) -> None:
        self._users: OrderedDict[str, _UserState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._users)

    def add(self, user: str, window: str, limit: int, window_seconds: float, now: float) -> WindowAdd:
        state = self._users.get(user)
        if state is None:
            state = self._users[user] = _UserState()
        slot = state.window(window)
        if slot is None:
            slot = _Window(window, limit, window_seconds)
            state.windows.append(slot)
        elif slot.times.maxlen != limit:
            slot.times = deque(slot.times, maxlen=limit)
        slot.seconds = window_seconds
        times = slot.times
        # full when the oldest of the last ``limit`` entries is still in the window
        full = len(times) == limit and times[0] > now - window_seconds
        self._touch(user, now)
        if full:  # the cheap answer: refusals can come in floods
            return WindowAdd(False, limit, times[0])
        times.append(now)  # what the deque drops is older than the window
        count, oldest = _in_window(times, now, window_seconds)
        return WindowAdd(True, count, oldest, now)

    def remove(self, user: str, window: str, entry: object) -> None:
        state = self._users.get(user)
        slot = state.window(window) if state is not None else None
        if slot is None:
            return
        times = slot.times
        for i in range(len(times) - 1, -1, -1):  # a roll-back takes back the newest, at once
            if times[i] == entry:
                del times[i]
                return

    def read(self, user: str, window: str, window_seconds: float, now: float) -> WindowRead:
        state = self._users.get(user)
        slot = state.window(window) if state is not None else None
        if slot is None or not slot.times:
            return WindowRead()
        count, oldest = _in_window(slot.times, now, window_seconds)
        return WindowRead(count, oldest, slot.times[-1])

    def hold(self, user: str, kernel_id: str, limit: int, now: float) -> LeaseHold:
        state = self._users.get(user)
        if state is None:
            state = self._users[user] = _UserState()
        held = state.held
        if held is not None and kernel_id in held:
            return LeaseHold(True, False, len(held))
        if len(held or ()) >= limit:
            return LeaseHold(False, False, len(held or ()))
        if held is None:
            held = state.held = set()
        held.add(kernel_id)
        return LeaseHold(True, True, len(held))

    def release(self, user: str, kernel_id: str, now: float) -> None:
        state = self._users.get(user)
        if state is None or state.held is None:
            return
        state.held.discard(kernel_id)
        if not state.held:
            state.held = None

    def held(self, user: str) -> frozenset[str]:
        state = self._users.get(user)
        return frozenset(state.held) if state is not None and state.held else frozenset()

    def apply(self, user: str, steps: list[Step], now: float) -> list[Outcome]:
        return apply_steps(self, user, steps, now)

    def _touch(self, user: str, now: float) -> None:
        self._users.move_to_end(user)
        for _ in range(DROP_PER_CALL):
            first = next(iter(self._users))
            if first == user:
                return
            state = self._users[first]
            if state.held or any(w.times and w.times[-1] > now - w.seconds for w in state.windows):
                self._users.move_to_end(first)  # still active: another turn at the back
                continue
            del self._users[first]


def _in_window(times: deque, now: float, window_seconds: float) -> tuple[int, float | None]:
    """Entries newer than ``now - window_seconds``: times are in order (one monotonic clock)."""
    first = bisect_right(times, now - window_seconds)
    return len(times) - first, (times[first] if first < len(times) else None)
