"""Which enforcement this host allows: cgroup v2, then cgroup v1, then psutil."""

from __future__ import annotations

import os

from .base import Backend, SandboxUnavailable
from .cgroup_v1 import REQUIRED as V1_REQUIRED
from .cgroup_v1 import CgroupV1Backend
from .cgroup_v2 import CONTROLLERS as V2_CONTROLLERS
from .cgroup_v2 import CgroupV2Backend
from .cgroups import ROOT_NAME, own_cgroups, read_text
from .psutil_backend import PsutilBackend


def cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, str]:
    """{v1 controller or "" for the v2 hierarchy: mount point}."""
    mounts: dict[str, str] = {}
    for line in read_text(mountinfo).splitlines():
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(fields) < 5 or len(extra) < 3:
            continue
        fstype, mount_point, options = extra[0], fields[4], extra[2]
        if fstype == "cgroup2":
            mounts.setdefault("", mount_point)
        elif fstype == "cgroup":
            for opt in options.split(","):
                mounts.setdefault(opt, mount_point)
    return mounts


def _base(mount: str, own_path: str) -> str:
    return os.path.join(mount, own_path.lstrip("/"), ROOT_NAME)


def _writable_dir(path: str) -> bool:
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return os.access(path, os.W_OK)


def v2_base() -> str | None:
    """<unified mount>/<our cgroup>/eda_gateway if v2 offers memory, cpu and pids there."""
    mount = cgroup_mounts().get("")
    own = own_cgroups().get("")
    if not mount or own is None:
        return None
    own_dir = os.path.join(mount, own.lstrip("/"))
    try:
        available = read_text(os.path.join(own_dir, "cgroup.controllers")).split()
    except OSError:
        return None
    if not set(V2_CONTROLLERS) <= set(available) or not _writable_dir(own_dir):
        return None
    return _base(mount, own)


def v1_bases() -> dict[str, str] | None:
    """{controller: <mount>/<our cgroup>/eda_gateway} if memory, cpu and pids are v1 mounts."""
    mounts, own = cgroup_mounts(), own_cgroups()
    bases = {}
    for controller in (*V1_REQUIRED, "cpuacct"):
        if controller in mounts and controller in own:
            bases[controller] = _base(mounts[controller], own[controller])
    if not all(c in bases for c in V1_REQUIRED):
        return None
    if bases.get("cpuacct") == bases["cpu"]:
        del bases["cpuacct"]  # co-mounted "cpu,cpuacct": one leaf serves both
    if not all(_writable_dir(b) for b in bases.values()):
        return None
    return bases


def detect(enforcement: str, log) -> Backend:
    """The started backend for ``EDASandbox.enforcement`` (auto | cgroup | psutil).

    Raises SandboxUnavailable, saying why, when a forced choice cannot be had.
    """
    reasons = []
    if enforcement in ("auto", "cgroup"):
        for make in (_try_v2, _try_v1):
            try:
                backend = make(log)
            except SandboxUnavailable as e:
                reasons.append(str(e))
                continue
            return backend
        if enforcement == "cgroup":
            raise SandboxUnavailable("EDASandbox.enforcement = 'cgroup' but " + "; ".join(reasons))
        log.warning("eda_gateway sandbox: no usable cgroups (%s): falling back to psutil", "; ".join(reasons))
    backend = PsutilBackend(log)
    backend.start()
    return backend


def _try_v2(log) -> Backend:
    base = v2_base()
    if base is None:
        raise SandboxUnavailable("cgroup v2 has no writable memory+cpu+pids subtree for this server")
    backend = CgroupV2Backend(log, base)
    backend.start()
    return backend


def _try_v1(log) -> Backend:
    bases = v1_bases()
    if bases is None:
        raise SandboxUnavailable("cgroup v1 memory, cpu and pids hierarchies are not all mounted and writable")
    backend = CgroupV1Backend(log, bases)
    backend.start()
    return backend
