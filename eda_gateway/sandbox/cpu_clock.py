"""The CPU clock: how long a kernel has kept a core busy with no admitted execution.

A kernel's own iopub ``status`` can be forged, and code runs outside executions
(completions and inspections touching a user ``__getattr__``, comm messages,
debugger evaluations, threads a cell left behind). The backend's CPU accounting
(the cgroup's usage, or the process tree's CPU times) is what the kernel cannot
fake, so the watchdog feeds it here every tick and acts on what this decides:

- a window of at least ``window`` seconds is *busy* when the kernel used more
  than ``busy_share`` of one core in it (default 10%: a loop throttled to the
  default 50% cap is clearly busy, an idle ipykernel uses well under 1%);
- busy time of ticks with no admitted execution in flight, and outside a
  server-made (re)start, adds up; a window that is not busy resets the sum;
- at ``limit`` seconds: ``INTERRUPT``; still busy ``grace`` seconds later: ``KILL``.

A (re)start counts as *starting* from the launch until the kernel first uses
less than ``busy_share`` of a core in a window, or the server's start/restart
returned and jupyter_server saw the kernel leave ``starting``, and for at most
``startup_allowance`` seconds (a kernel that never settles cannot stay exempt).
Only the server starts that period (``launched``); the kernel can only end it.

Pure: timestamps and CPU seconds in, decisions out (tests/test_cpu_clock.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# More than this share of one core over a window is busy.
BUSY_SHARE = 0.10
# Shortest window busy-ness is judged on: psutil's duty cycling stops a throttled
# loop for a few 100 ms at a time, so one 0.25 s tick could look idle.
WINDOW_SECONDS = 1.0
# Longest a (re)start is exempt: ipykernel needs ~1 s of CPU to start, ~10 s at a 10% cap.
STARTUP_ALLOWANCE_SECONDS = 20.0

INTERRUPT = "interrupt"
KILL = "kill"


@dataclass
class _Kernel:
    ref_at: float | None = None  # start of the current window
    ref_cpu: float = 0.0
    last_at: float | None = None  # previous tick
    free: float = 0.0  # seconds of the current window with nothing exempting the kernel
    background: float = 0.0  # busy, unexempt seconds since the kernel was last idle
    starting_since: float | None = None
    server_ready: bool = False  # the server's start/restart of the kernel returned
    interrupted_at: float | None = None
    busy: bool = False  # the last window's judgement


class CpuClock:
    def __init__(self, busy_share: float = BUSY_SHARE, window: float = WINDOW_SECONDS,
                 startup_allowance: float = STARTUP_ALLOWANCE_SECONDS) -> None:
        self.busy_share = busy_share
        self.window = window
        self.startup_allowance = startup_allowance
        self._kernels: dict[str, _Kernel] = {}

    # --- what the server did --------------------------------------------------------
    def launched(self, kernel_id: str, now: float) -> None:
        """The server (re)starts the kernel: a new process, everything counted anew."""
        self._kernels[kernel_id] = _Kernel(starting_since=now)

    def server_ready(self, kernel_id: str) -> None:
        """The server's start or restart call returned."""
        kernel = self._kernels.get(kernel_id)
        if kernel is not None:
            kernel.server_ready = True

    def forget(self, kernel_id: str) -> None:
        self._kernels.pop(kernel_id, None)

    # --- questions ---------------------------------------------------------------------
    def starting(self, kernel_id: str, now: float) -> bool:
        kernel = self._kernels.get(kernel_id)
        return kernel is not None and self._still_starting(kernel, now, kernel_up=False)

    def busy(self, kernel_id: str) -> bool:
        """Was the kernel busy in its last judged window?"""
        kernel = self._kernels.get(kernel_id)
        return kernel is not None and kernel.busy

    def background_seconds(self, kernel_id: str) -> float:
        kernel = self._kernels.get(kernel_id)
        return kernel.background if kernel is not None else 0.0

    # --- the tick ------------------------------------------------------------------------
    def observe(self, kernel_id: str, now: float, cpu_seconds: float, *, admitted: bool,
                limit: float, grace: float, kernel_up: bool = False) -> str | None:
        """One measurement; returns ``INTERRUPT``, ``KILL`` or None.

        ``admitted``: an admitted execution is in flight on the kernel now.
        ``kernel_up``: jupyter_server no longer sees the kernel ``starting`` (only
        believed once the server's own start/restart returned).
        """
        kernel = self._kernels.setdefault(kernel_id, _Kernel())
        starting = self._still_starting(kernel, now, kernel_up)
        if kernel.ref_at is None or cpu_seconds < kernel.ref_cpu:  # first sample, or a new process
            kernel.ref_at, kernel.ref_cpu, kernel.last_at, kernel.free = now, cpu_seconds, now, 0.0
            return None
        if not admitted and not starting:
            kernel.free += now - kernel.last_at
        kernel.last_at = now
        elapsed = now - kernel.ref_at
        if elapsed < self.window:
            return None
        kernel.busy = cpu_seconds - kernel.ref_cpu > self.busy_share * elapsed
        if kernel.busy:
            kernel.background += kernel.free
        else:
            kernel.background, kernel.interrupted_at, kernel.starting_since = 0.0, None, None
        kernel.ref_at, kernel.ref_cpu, kernel.free = now, cpu_seconds, 0.0
        if not kernel.busy or admitted or starting:
            return None  # an admitted execution has its own clock (watchdog._check_wall_time)
        if kernel.interrupted_at is None:
            if kernel.background >= limit:
                kernel.interrupted_at = now
                return INTERRUPT
        elif now - kernel.interrupted_at >= grace:
            self.forget(kernel_id)  # the caller kills the tree; the relaunch starts anew
            return KILL
        return None

    def _still_starting(self, kernel: _Kernel, now: float, kernel_up: bool) -> bool:
        if kernel.starting_since is None:
            return False
        if now - kernel.starting_since >= self.startup_allowance or (kernel.server_ready and kernel_up):
            kernel.starting_since = None
            return False
        return True
