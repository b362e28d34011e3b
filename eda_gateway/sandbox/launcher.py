"""The one chain every kernel (re)launch passes through: the sandbox, then isolation.

The app builds one ``LaunchChain`` and sets it on the kernel manager
(``EDAKernelManager.launch_chain``); the provisioner finds it on its kernel manager.
Order matters: the sandbox adds its limits (cgroup entry or rlimits between fork and
exec, the kernel's environment), then isolation rewrites the command to start inside
its layers, so the limits hold the whole confined tree, launcher included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Confinement(Protocol):
    """The sandbox's side of a launch (eda_gateway/sandbox/service.py)."""

    @property
    def ready(self) -> bool: ...

    def prepare_launch(self, kernel_id: str, owner: str, kwargs: dict) -> dict: ...

    def attached(self, kernel_id: str, pid: int) -> None: ...

    async def kill_tree(self, kernel_id: str) -> None: ...

    async def released(self, kernel_id: str, restart: bool) -> None: ...


class Wrapper(Protocol):
    """Isolation's side of a launch (eda_gateway/isolation/service.py)."""

    def wrap(self, provisioner: Any, owner: str | None, kwargs: dict) -> dict: ...


class LaunchChain:
    """Sandbox, then isolation, for one kernel launch; the provisioner's only collaborator."""

    def __init__(self, sandbox: Confinement, isolation: Wrapper, owner_of: Callable[[str], str | None]):
        self.sandbox = sandbox
        self.isolation = isolation
        self.owner_of = owner_of

    @property
    def ready(self) -> bool:
        return self.sandbox.ready

    def prepare(self, provisioner: Any, kwargs: dict) -> dict:
        kernel_id = str(provisioner.kernel_id)
        owner = self.owner_of(kernel_id)
        kwargs = self.sandbox.prepare_launch(kernel_id, owner or "", kwargs)
        # private connection file, landlock/bwrap/uid wrapper (eda_gateway/isolation)
        return self.isolation.wrap(provisioner, owner, kwargs)

    def attached(self, kernel_id: str, pid: int) -> None:
        self.sandbox.attached(kernel_id, pid)

    async def kill(self, kernel_id: str) -> None:
        await self.sandbox.kill_tree(kernel_id)

    async def released(self, kernel_id: str, restart: bool) -> None:
        await self.sandbox.released(kernel_id, restart=restart)
