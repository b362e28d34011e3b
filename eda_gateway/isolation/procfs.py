"""A kernel's own view of /proc, in which other processes do not exist.

Without bwrap's pid namespace a kernel sees the host's /proc: the server's and
other users' kernels' ``cmdline`` and ``status`` are world-readable, and a uid 0
kernel could read ``environ`` (tokens) by plain file permissions. The launcher,
still root, gives the kernel a private mount namespace and mounts a fresh procfs
there with ``hidepid=invisible``: a process is listed only if the kernel may
ptrace it, which Landlock (another domain) or the uid layer (another uid) denies
for everything outside the kernel's own tree. ``gid=`` names a group no kernel
is in: the default (0) would exempt uid-0 kernels. Must run before the Landlock
ruleset is built (its /proc rule must point at this procfs), and before
capabilities are dropped (mounting needs CAP_SYS_ADMIN).
"""

from __future__ import annotations

import os

from .libc import check, libc

_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 1 << 14, 1 << 18
EXEMPT_GID = 65534  # nogroup: kernels run as root's group or their own per-user gid

def _check(result: int, what: str) -> None:
    check(result, f"private /proc: {what}", PermissionError)


def available() -> str | None:
    """None if this process can build a private /proc, else why not."""
    if os.geteuid() != 0:
        return "the server does not run as root, so it cannot give kernels a private /proc"
    return None


def make_private() -> None:
    """Enter a new mount namespace whose /proc hides every process outside the kernel's reach."""
    _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # our mounts must not propagate back to the host's namespace
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
    options = f"hidepid=invisible,gid={EXEMPT_GID}".encode()
    _check(libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, options), "mount proc")
