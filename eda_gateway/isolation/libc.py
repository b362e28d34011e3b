"""The C library for the launcher's raw calls (Landlock syscalls, prctl, capget/capset,
unshare, mount), and the one way their failures become exceptions."""

from __future__ import annotations

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def check(result: int, what: str, error: type[OSError] = OSError) -> int:
    """``result`` of a libc call, or ``error`` naming ``what`` and errno if it failed (< 0)."""
    if result < 0:
        err = ctypes.get_errno()
        raise error(err, f"{what}: {os.strerror(err)}")
    return result
