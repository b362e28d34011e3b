"""Private per-user folders: kernel workspaces (TMPDIR) and their clean-up."""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass

from .users import user_id

log = logging.getLogger(__name__)

WORKSPACE_PREFIX = "eda_user_"
LOCK_NAME = ".eda_gateway.lock"  # held by the server whose root it is (eda_gateway/claims.py)
# deeper folders are left alone (and counted as errors): bounds open fds and recursion
MAX_DEPTH = 64


def ensure_private_dir(path: str) -> str:
    """Create ``path`` (mode 0700) if needed; refuse a symlink planted in its place."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{path} exists and is not a directory")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


@dataclass
class CleanupReport:
    removed_files: int = 0
    removed_dirs: int = 0
    errors: int = 0


class Workspaces:
    """``<root>/eda_user_<user_id>/`` for each user, and the periodic clean-up of old files."""

    def __init__(self, root: str, disk=None):
        self.root = os.path.abspath(root)
        self.disk = disk  # eda_gateway.quotas.DiskQuotas, or None: no disk quota

    @property
    def lock_path(self) -> str:
        return os.path.join(self.root, LOCK_NAME)

    def path_for(self, username: str) -> str:
        return os.path.join(self.root, WORKSPACE_PREFIX + user_id(username))

    def ensure(self, username: str) -> str:
        os.makedirs(self.root, exist_ok=True)
        if self.disk is not None:
            self.disk.ensure(username)  # the user's volume, mounted at path_for(username)
        return ensure_private_dir(self.path_for(username))

    def cleanup(self, max_age: float, now: float | None = None) -> CleanupReport:
        """Delete files older than ``max_age`` seconds inside every workspace.

        Never follows symlinks (a link is removed as a link, its target is
        untouched) and never leaves ``root``. Emptied old sub-folders go too;
        the workspace folders themselves stay.

        The walk holds each folder open and works relative to it (``dir_fd``,
        ``O_NOFOLLOW``): a kernel that swaps a sub-folder for a symlink while the
        clean-up runs makes the open fail, instead of leading the server (root)
        to delete files elsewhere.
        """
        report = CleanupReport()
        cutoff = (now if now is not None else time.time()) - max_age
        try:
            root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return report
        try:
            with os.scandir(root_fd) as entries:
                names = [e.name for e in entries if e.name.startswith(WORKSPACE_PREFIX)]
            for name in names:
                self._clean_dir(root_fd, name, cutoff, report, depth=0)
        finally:
            os.close(root_fd)
        return report

    def _clean_dir(self, parent_fd: int, name: str, cutoff: float, report: CleanupReport, depth: int) -> None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
        except FileNotFoundError:
            return
        except OSError:  # a symlink or a file in its place, or no permission
            report.errors += 1
            return
        try:
            with os.scandir(fd) as it:
                entries = list(it)
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(info.st_mode):
                        if depth >= MAX_DEPTH:
                            report.errors += 1
                        else:
                            self._clean_dir(fd, entry.name, cutoff, report, depth + 1)
                    elif info.st_mtime < cutoff:
                        os.unlink(entry.name, dir_fd=fd)  # a link goes as a link
                        report.removed_files += 1
                except FileNotFoundError:
                    continue
                except OSError:
                    report.errors += 1
        finally:
            os.close(fd)
        if depth == 0:
            return  # the workspace folder itself stays
        try:
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode) and info.st_mtime < cutoff:
                os.rmdir(name, dir_fd=parent_fd)  # fails on a non-empty folder, which stays
                report.removed_dirs += 1
        except OSError:
            pass
