"""One OS uid per user, for servers running as root.

``EDAIsolation.user_uids`` pins uids ({"alice": 1001}); everyone else gets one
from ``EDAIsolation.uid_range``. The allocation needs no state file: a user whose
content folder (``<root_dir>/<user_id>``, made by the server only) already belongs
to a uid of the range keeps that uid (so files stay theirs across restarts), a new
user gets the lowest uid that owns no such folder and is not pinned. Each uid is
its own group (gid == uid).

Not the workspace folder: it lives in a shared place like /tmp, where another
user's kernel (uid layer alone) could make ``eda_user_bob`` first, as its own uid,
and so have bob's kernels run as that uid after the next server start.
"""

from __future__ import annotations

import os
import threading


class UidExhausted(RuntimeError):
    pass


class UidAllocator:
    def __init__(self, pinned: dict[str, int], uid_range: tuple[int, int], anchor_of, scanned: list[str]):
        self.pinned = dict(pinned)
        self.low, self.high = uid_range
        self.anchor_of = anchor_of  # username -> the folder whose owner is the user's uid
        self.scanned = scanned  # folders whose entries' owners are taken uids
        self._given: dict[str, int] = {}
        self._lock = threading.Lock()

    def uid_for(self, username: str) -> int:
        if username in self.pinned:
            return self.pinned[username]
        with self._lock:
            if username in self._given:
                return self._given[username]
            uid = self._owner_in_range(self.anchor_of(username))
            if uid is None or uid in self._taken(exclude=username):
                uid = self._lowest_free()
            self._given[username] = uid
            return uid

    def _owner_in_range(self, path: str) -> int | None:
        try:
            uid = os.lstat(path).st_uid
        except OSError:
            return None
        return uid if self.low <= uid <= self.high else None

    def _taken(self, exclude: str | None = None) -> set[int]:
        taken = set(self.pinned.values())
        taken.update(uid for user, uid in self._given.items() if user != exclude)
        return taken

    def _lowest_free(self) -> int:
        taken = self._taken()
        for root in self.scanned:
            try:
                with os.scandir(root) as entries:
                    taken.update(e.stat(follow_symlinks=False).st_uid for e in entries)
            except OSError:
                pass
        for uid in range(self.low, self.high + 1):
            if uid not in taken:
                return uid
        raise UidExhausted(f"EDAIsolation.uid_range {self.low}-{self.high} has no free uid left")


def give_to(path: str, uid: int, gid: int, mode: int = 0o700) -> None:
    """Make ``path`` (not a symlink) belong to ``uid`` with ``mode``."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def reachable_by(uid: int, paths: list[str], executable: str) -> str | None:
    """None if ``uid`` can reach every path and run ``executable``; else what it cannot."""
    import subprocess

    probe = "import os,sys\nfor p in sys.argv[1:]:\n    os.stat(p)\n"
    try:
        done = subprocess.run(
            [executable, "-S", "-c", probe, *paths], user=uid, group=uid, extra_groups=[],
            capture_output=True, timeout=20, check=False, cwd="/",
        )
    except PermissionError as e:
        return f"{executable}: {e.strerror}"
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip().splitlines()[-1][:300] if done.stderr else "failed"
    return None
