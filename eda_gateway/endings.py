"""Every execution gets an answer, whatever ends its kernel.

A kernel that dies or restarts sends no reply for what it was running. The sandbox
names the kills it makes (``MemoryLimitExceeded``, ``ExecutionTimeout``), but other
things end kernels too: the auto-restarter after a crash (it can even win the race
against the watchdog after an out-of-memory kill), a restart through the API, a
kernel that cannot be brought back. For each of those this publishes a ``killed``
verdict while admitted executions still wait, so that every client of the kernel
(websocket, REST runner) ends them with an error naming what happened:

- the process died for memory: ``MemoryLimitExceeded``, from the sandbox, always;
- it died otherwise: ``KernelDied``;
- somebody restarted it: ``KernelRestarted``;
- it was shut down (by its owner, an admin, or the idle culler): ``KernelShutDown``.

Events come from ``EDAKernelManager.listeners`` ("died", "dead", "restarting",
"stopping", "stopped"), before the leases they concern are released.
"""

from __future__ import annotations

from collections.abc import Callable

from .verdicts import KERNEL_DIED, KERNEL_RESTARTED, KERNEL_SHUT_DOWN, Verdict


class KernelEndings:
    def __init__(self, verdicts, pending_on: Callable[[str], list[str]],
                 memory_verdict_for: Callable[[str], Verdict | None]) -> None:
        self.verdicts = verdicts
        self.pending_on = pending_on  # admitted, unanswered msg_ids on a kernel
        self.memory_verdict_for = memory_verdict_for  # the sandbox: publishes if it was memory

    def on_kernel_event(self, event: str, kernel_id: str, owner: str) -> None:
        if event == "died":  # the auto-restarter found the process gone; it restarts it now
            self._end(KERNEL_DIED, kernel_id, "the kernel's process ended unexpectedly and the kernel is "
                      "being restarted")
        elif event == "dead":  # ... and it gave up
            self._end(KERNEL_DIED, kernel_id, "the kernel's process ended unexpectedly and the kernel could "
                      "not be restarted")
        elif event == "restarting":
            self._end(KERNEL_RESTARTED, kernel_id, "the kernel was restarted before this execution ended")
        elif event in ("stopping", "stopped"):  # stopped: also when jupyter_server drops a dead kernel
            self._end(KERNEL_SHUT_DOWN, kernel_id, "the kernel was shut down before this execution ended")

    def _end(self, ename: str, kernel_id: str, what: str) -> None:
        # A process that died for memory is MemoryLimitExceeded whoever noticed first.
        if self.memory_verdict_for(kernel_id) is not None:
            return
        pending = self.pending_on(kernel_id)
        if not pending:
            return  # nothing waits: nobody to tell
        self.verdicts.publish(
            Verdict(ename, f"{what} (its variables are lost)", kernel_id, None, killed=True,
                    details={"action": "ended", "executions": len(pending)})
        )
