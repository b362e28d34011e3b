"""Which confinement layers exist on this host, and which the admin asked for.

``c.EDAIsolation.isolation`` is ``"auto"`` (every layer this host offers),
``"none"``, one layer name, or several ("landlock,uid" or a list).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from traitlets import TraitError

from . import bwrap, landlock, procfs

LAYERS = ("landlock", "bwrap", "uid")  # in the order they are applied (outermost is bwrap)
SETTING = "EDAIsolation.isolation"


def parse_choice(value, setting: str = SETTING) -> list[str] | None:
    """None for auto, else the chosen layers; TraitError naming the setting if unknown."""
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    if names == ["auto"]:
        return None
    if names == ["none"] or names == []:
        return []
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        raise TraitError(
            f"{setting}: unknown layer(s) {unknown}; use 'auto', 'none' or some of {', '.join(LAYERS)}"
        )
    return [n for n in LAYERS if n in names]


@dataclass
class HostLayers:
    """What this host offers: ``available`` layers, and why the others are missing."""

    available: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    landlock_abi: int = 0
    bwrap_path: str | None = None
    no_private_proc: str | None = None  # why kernels cannot get a private /proc outside bwrap (None: they can)

    @classmethod
    def detect(cls) -> HostLayers:
        host = cls()
        host.landlock_abi = landlock.abi_version()
        if host.landlock_abi >= 1:
            host.available.append("landlock")
        else:
            host.missing["landlock"] = "the kernel has no Landlock (Linux 5.13+ with lsm=landlock)"
        path = bwrap.executable()
        why = bwrap.works(path) if path else "bwrap is not installed (apt-get install bubblewrap)"
        if why is None:
            host.available.append("bwrap")
            host.bwrap_path = path
        else:
            host.missing["bwrap"] = f"bwrap cannot build a sandbox here: {why}"
        host.no_private_proc = procfs.available()
        if os.geteuid() == 0:
            host.available.append("uid")
        else:
            host.missing["uid"] = "the server does not run as root, so it cannot switch uids"
        return host


class IsolationUnavailable(Exception):
    """An explicit choice this host cannot honour; the message names the setting."""
