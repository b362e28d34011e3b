"""One server per state folder: a claim on the workspace root and on the history database.

Two servers on one host would otherwise share ``/tmp/eda_user_<name>`` (the second moves the
first one's workspaces aside as foreign, cleans them, hands them to its own uids) and the
history database (each admin dashboard lists the other's users). The claim is an exclusive
``flock`` on a lock file, held by the server process for its life: the kernel releases it when
the server dies, however it dies, so a stale file never blocks a restart. The file names the
owner (pid, start time, port) for the message the second server stops with.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time


class Claimed(Exception):
    """The state is another live server's (or cannot be claimed); the message says whose."""


class Claim:
    """Holds ``lock_path`` for this process until ``release``."""

    def __init__(self, lock_path: str, setting: str):
        self.lock_path = lock_path
        self.setting = setting
        self._fd: int | None = None

    def take(self, owner: dict) -> None:
        """Claim it for ``owner`` (what the lock file tells a second server), or raise Claimed."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            # ELOOP: a symlink planted in a shared folder (say /tmp) to make us write elsewhere
            why = "it is a symlink" if e.errno == errno.ELOOP else e.strerror
            raise Claimed(f"{self.setting}: cannot take the lock {self.lock_path}: {why}") from e
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise Claimed(f"{self.setting}: the lock {self.lock_path} is not a file of this server's user "
                              f"(uid {os.geteuid()}); remove it, or choose another {self.setting}")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Claimed(f"{self.setting}: {os.path.dirname(self.lock_path) or '.'} is in use by another "
                              f"running server ({describe(read_owner(fd))}); give this server its own "
                              f"{self.setting}") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the flock goes with it
            self._fd = None


def read_owner(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def describe(owner: dict) -> str:
    if not owner.get("pid"):
        return "owner unknown"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    where = f", port {owner['port']}" if owner.get("port") else ""
    return f"pid {owner['pid']}, started {started}{where}"


def this_server(serverapp) -> dict:
    """What a lock file says about the server holding it."""
    import psutil

    return {"pid": os.getpid(), "started": psutil.Process().create_time(), "port": getattr(serverapp, "port", None),
            "root_dir": os.path.abspath(getattr(serverapp, "root_dir", "") or ".")}
