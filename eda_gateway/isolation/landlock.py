"""Landlock (Linux 5.13+) through raw syscalls: no library, no privileges needed.

A ruleset lists what a process may still do once it calls ``restrict``: read or
write beneath some folders, bind or connect some TCP ports (ABI 4+), and, with
ABI 6+, no signals or abstract unix sockets towards processes outside its
domain. The restriction is inherited by every child and cannot be lifted, not
even by root. Only x86_64 and aarch64 syscall numbers are known here.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterable

from .libc import check, libc

# Same numbers on x86_64 and aarch64 (new syscalls share one table).
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS = 38

# File-system rights, with the ABI that introduced them.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
# Rights that make sense on a file (the others apply to folders only).
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

READ = EXECUTE | READ_FILE | READ_DIR
# Everything but device nodes and symlinks. A link a kernel could plant (or swap in for a
# folder mid-request) would lead the server, which may read everything, out of the user's
# folder; renaming one in from elsewhere needs MAKE_SYM at the destination too.
WRITE = (1 << 16) - 1 & ~(MAKE_CHAR | MAKE_BLOCK | MAKE_SYM)

BIND_TCP, CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6



class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


class LandlockError(OSError):
    pass


def _check(result: int, what: str) -> int:
    return check(result, f"landlock {what}", LandlockError)


def abi_version() -> int:
    """The kernel's Landlock ABI (0: not available on this kernel or architecture)."""
    if platform.machine() not in ("x86_64", "aarch64"):
        return 0
    version = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


class Ruleset:
    """Build with ``allow_path`` / ``allow_port``, then ``restrict()`` the calling process."""

    def __init__(self, abi: int | None = None, network: bool = True):
        """``network=False`` leaves TCP alone (e.g. inside an empty network namespace)."""
        self.abi = abi_version() if abi is None else abi
        if self.abi < 1:
            raise LandlockError(0, "Landlock is not available on this kernel")
        self.fs_rights = FS_BY_ABI.get(self.abi, FS_BY_ABI[5])
        self.net_rights = BIND_TCP | CONNECT_TCP if self.abi >= 4 and network else 0
        attr = _RulesetAttr(self.fs_rights, self.net_rights,
                            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if self.abi >= 6 else 0)
        size = ctypes.sizeof(attr) if self.abi >= 6 else 16 if self.abi >= 4 else 8
        self.fd = _check(libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                                       ctypes.c_uint32(0)), "create_ruleset")

    @property
    def handles_network(self) -> bool:
        return bool(self.net_rights)

    @property
    def scopes_signals(self) -> bool:
        return self.abi >= 6

    def allow_path(self, path: str, rights: int) -> bool:
        """Allow ``rights`` beneath ``path``; False if it does not exist."""
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            rights &= self.fs_rights
            if not os.path.isdir(f"/proc/self/fd/{fd}"):
                rights &= FILE_RIGHTS
            attr = _PathBeneathAttr(rights, fd)
            _check(libc.syscall(_SYS_ADD_RULE, self.fd, _RULE_PATH_BENEATH, ctypes.byref(attr), 0), f"add_rule {path}")
        finally:
            os.close(fd)
        return True

    def allow_ports(self, ports: Iterable[int], rights: int) -> None:
        if not self.handles_network:
            return
        attr = _NetPortAttr(rights, 0)
        for port in ports:
            attr.port = port
            _check(libc.syscall(_SYS_ADD_RULE, self.fd, _RULE_NET_PORT, ctypes.byref(attr), 0), f"add_rule port {port}")

    def restrict(self) -> None:
        """Confine the calling thread (and what it execs) for good."""
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(libc.syscall(_SYS_RESTRICT_SELF, self.fd, 0), "restrict_self")
        os.close(self.fd)
