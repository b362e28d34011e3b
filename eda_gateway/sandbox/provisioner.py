"""The kernel provisioner every kernel starts through: confined from its first instruction.

``EDAProvisioner`` is jupyter_client's LocalProvisioner plus the launch chain
(eda_gateway/sandbox/launcher.py) that the app sets on the kernel manager:
``pre_launch`` (which also runs on every restart) asks the sandbox for the
owner's effective limits and the launch additions (enter the kernel's cgroups
or set RLIMIT_AS between fork and exec, allocator/BLAS environment), then
isolation for its layers; ``kill`` and ``cleanup`` also take down what escaped
the process group. Without a chain no kernel starts.

``EDAProvisionerFactory`` replaces jupyter_client's factory singleton so that
every kernelspec, including one naming another provisioner, gets ours.
"""

from __future__ import annotations

import pathlib
from importlib.metadata import EntryPoint
from typing import Any

from jupyter_client.provisioning import KernelProvisionerFactory, LocalProvisioner

from ..contents import inside
from .launcher import LaunchChain

PROVISIONER_NAME = "eda-sandbox-provisioner"
ENTRY_POINT = EntryPoint(
    name=PROVISIONER_NAME,
    value="eda_gateway.sandbox.provisioner:EDAProvisioner",
    group=KernelProvisionerFactory.GROUP_NAME,
)


class SandboxMissing(RuntimeError):
    """A kernel would start unconfined: refuse instead."""


class EDAProvisioner(LocalProvisioner):
    """LocalProvisioner whose kernels run under the sandbox's limits."""

    def _mapping(self):
        """The MappingKernelManager (EDAKernelManager) that made our KernelManager (our parent)."""
        return getattr(self.parent, "parent", None)

    def _chain(self) -> LaunchChain:
        chain = getattr(self._mapping(), "launch_chain", None)
        if chain is None or not chain.ready:
            raise SandboxMissing("eda_gateway's sandbox is not running: refusing to start an unconfined kernel")
        return chain

    def resolve_path(self, path_str: str) -> str | None:
        """A path as the kernel sees it (``/api/resolvePath``), only inside the owner's
        folders: LocalProvisioner answers for any path (``~``, ``/root/...``), checked by
        the server as root, which tells anyone whether a file exists anywhere."""
        path = pathlib.Path(path_str)
        if not path.is_absolute():
            if not self.cwd:
                return None
            path = pathlib.Path(self.cwd) / path
        mapping = self._mapping()
        folders_of = getattr(mapping, "folders_of_owner", None)
        owner = mapping.owner_of(self.kernel_id) if folders_of is not None else None
        if not owner:
            return None
        folders = folders_of(owner)
        if folders and path.exists() and any(inside(str(path), folder) for folder in folders):
            return path.resolve().as_posix()
        return None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        chain = self._chain()
        kwargs = await super().pre_launch(**kwargs)
        return chain.prepare(self, kwargs)

    async def post_launch(self, **kwargs: Any) -> None:
        await super().post_launch(**kwargs)
        self._chain().attached(self.kernel_id, self.pid)

    async def kill(self, restart: bool = False) -> None:
        await super().kill(restart=restart)
        await self._chain().kill(self.kernel_id)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        try:
            chain = self._chain()
        except SandboxMissing:
            return  # server stopping: the sandbox already removed everything
        await chain.released(self.kernel_id, restart=restart)


class EDAProvisionerFactory(KernelProvisionerFactory):
    """Hands out EDAProvisioner for every kernelspec."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # works even when the package's entry points are not installed (editable checkouts)
        self.provisioners.setdefault(PROVISIONER_NAME, ENTRY_POINT)

    def _get_provisioner_config(self, kernel_spec: Any) -> dict[str, Any]:
        named = kernel_spec.metadata.get("kernel_provisioner", {})
        name = named.get("provisioner_name")
        if name in (None, PROVISIONER_NAME, "local-provisioner"):
            return {"provisioner_name": PROVISIONER_NAME, "config": dict(named.get("config", {}))}
        self.log.warning(
            "eda_gateway sandbox: kernelspec %r names provisioner %r; it runs confined "
            "by %s instead (its provisioner config is ignored)",
            getattr(kernel_spec, "display_name", "?"),
            name,
            PROVISIONER_NAME,
        )
        return {"provisioner_name": PROVISIONER_NAME, "config": {}}


def install_factory(parent) -> EDAProvisionerFactory:
    """Make EDAProvisionerFactory the factory singleton jupyter_client uses."""
    if KernelProvisionerFactory.initialized() and isinstance(
        KernelProvisionerFactory.instance(), EDAProvisionerFactory
    ):
        return KernelProvisionerFactory.instance()
    KernelProvisionerFactory.clear_instance()
    factory = EDAProvisionerFactory.instance(parent=parent)
    factory.default_provisioner_name = PROVISIONER_NAME
    return factory
