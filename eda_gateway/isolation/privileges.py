"""Leave a kernel no privileges: no capabilities in any set, ``no_new_privs``, no root magic.

Runs in the launcher just before the kernel is exec'd, under every choice of
layers. A kernel that is uid 0 (Landlock alone, or bwrap without the uid layer)
would otherwise hold every capability: raw and packet sockets (sniffing other
users' tokens on loopback), ``SO_RCVBUFFORCE``, ``bpf()``, negative nice values.

Order: the bounding set and securebits need ``CAP_SETPCAP``, the uid drop needs
``CAP_SETUID``/``CAP_SETGID``, so ``drop_bounding`` comes first, the caller drops
the uid, then ``drop_all`` empties what is left and ``verify`` checks the result.
"""

from __future__ import annotations

import ctypes
import os

from .libc import check, libc

_PR_CAPBSET_READ, _PR_CAPBSET_DROP = 23, 24
_PR_GET_SECUREBITS, _PR_SET_SECUREBITS = 27, 28
_PR_SET_NO_NEW_PRIVS, _PR_GET_NO_NEW_PRIVS = 38, 39
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAP_SETPCAP = 8
_CAPABILITY_VERSION_3 = 0x20080522
# uid 0 gains nothing at exec (NOROOT), capabilities are still cleared when the uid
# changes (NO_SETUID_FIXUP stays off), no ambient raise, no keep-caps; all locked.
_SECBIT_NOROOT, _SECBIT_NOROOT_LOCKED = 1 << 0, 1 << 1
_SECBIT_NO_SETUID_FIXUP_LOCKED, _SECBIT_KEEP_CAPS_LOCKED = 1 << 3, 1 << 5
_SECBIT_NO_CAP_AMBIENT_RAISE, _SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 6, 1 << 7
SECUREBITS = (_SECBIT_NOROOT | _SECBIT_NOROOT_LOCKED | _SECBIT_NO_SETUID_FIXUP_LOCKED | _SECBIT_KEEP_CAPS_LOCKED
              | _SECBIT_NO_CAP_AMBIENT_RAISE | _SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> int:
    return check(result, what, PermissionError)


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 63


def _capget() -> tuple[int, int, int]:
    header, data = _CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(libc.capget(ctypes.byref(header), data), "capget")
    def join(name):
        return getattr(data[0], name) | getattr(data[1], name) << 32
    return join("effective"), join("permitted"), join("inheritable")


def bounding_set() -> list[int]:
    return [cap for cap in range(last_cap() + 1) if libc.prctl(_PR_CAPBSET_READ, cap, 0, 0, 0) == 1]


def drop_bounding() -> None:
    """No exec can bring a capability back; root's exec gives none (securebits)."""
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if not _capget()[0] & (1 << _CAP_SETPCAP):
        return  # nothing left to drop with (bwrap dropped them); verify() says if that is enough
    if libc.prctl(_PR_GET_SECUREBITS, 0, 0, 0, 0) & SECUREBITS != SECUREBITS:
        _check(libc.prctl(_PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0), "securebits")
    for cap in bounding_set():
        _check(libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap} from the bounding set")


def drop_all() -> None:
    """Empty the ambient, effective, permitted and inheritable sets."""
    _check(libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
    header, data = _CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")


def verify() -> None:
    """Raise unless the process holds no capability and cannot gain one."""
    if libc.prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        raise PermissionError("no_new_privs is not set")
    effective, permitted, inheritable = _capget()
    if effective or permitted or inheritable:
        raise PermissionError(f"capabilities left: effective {effective:#x}, permitted {permitted:#x}")
    if os.geteuid() == 0 and bounding_set():
        raise PermissionError(f"uid 0 with capabilities in its bounding set: {bounding_set()}")
