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

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def path_for(self, username: str) -> str:
        return os.path.join(self.root, WORKSPACE_PREFIX + user_id(username))

    def ensure(self, username: str) -> str:
        os.makedirs(self.root, exist_ok=True)
        return ensure_private_dir(self.path_for(username))

    def cleanup(self, max_age: float, now: float | None = None) -> CleanupReport:
        """Delete files older than ``max_age`` seconds inside every workspace.

        Never follows symlinks (a link is removed as a link, its target is
        untouched) and never leaves ``root``. Emptied old sub-folders go too;
        the workspace folders themselves stay.
        """
        report = CleanupReport()
        cutoff = (now if now is not None else time.time()) - max_age
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return report
        for entry in entries:
            if entry.name.startswith(WORKSPACE_PREFIX) and entry.is_dir(follow_symlinks=False):
                self._clean_tree(entry.path, cutoff, report, top=True)
        return report

    def _clean_tree(self, path: str, cutoff: float, report: CleanupReport, top: bool) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            report.errors += 1
            return
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    self._clean_tree(entry.path, cutoff, report, top=False)
                    continue
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    report.removed_files += 1
            except FileNotFoundError:
                continue
            except OSError:
                report.errors += 1
        if not top:
            try:
                if not os.listdir(path) and os.lstat(path).st_mtime < cutoff:
                    os.rmdir(path)
                    report.removed_dirs += 1
            except OSError:
                pass
