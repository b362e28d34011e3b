"""bubblewrap command lines: a fresh mount tree (read-only system), private /tmp,
/dev/shm and pid/ipc/uts namespaces, and no network unless allowed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# System folders shown read-only. Symlinks (merged /usr) are recreated as links.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")


def executable() -> str | None:
    return shutil.which("bwrap")


def works(bwrap: str) -> str | None:
    """None if bwrap can build a sandbox here, else why not."""
    argv = [bwrap, *system_args(), "--proc", "/proc", "--dev", "/dev", "--unshare-all", "--die-with-parent",
            "--", sys.executable, "-c", "pass"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if done.returncode == 0 else done.stderr.decode(errors="replace").strip()[:300]


def system_args() -> list[str]:
    """Read-only system folders, then the interpreter."""
    args: list[str] = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args + interpreter_args()


def interpreter_args() -> list[str]:
    """The interpreter and its venv, read-only. Must come after the private /tmp:
    a venv under /tmp (a CI checkout, say) would otherwise be hidden by it."""
    args: list[str] = []
    for path in dict.fromkeys((sys.base_prefix, sys.prefix)):
        args += [*parent_dirs([path]), "--ro-bind", path, path]
    return args


def parent_dirs(paths: list[str]) -> list[str]:
    """Create the folders leading to bind targets as 0755: bwrap would make them 0700,
    unreachable once the kernel runs as another uid."""
    parents: list[str] = []
    for path in paths:
        parent = os.path.dirname(path)
        chain = []
        while parent not in ("/", ""):
            chain.append(parent)
            parent = os.path.dirname(parent)
        parents += [p for p in reversed(chain) if p not in parents]
    args: list[str] = []
    for parent in parents:
        args += ["--perms", "0755", "--dir", parent]
    return args


def command(
    bwrap: str,
    *,
    read: list[str],
    write: list[str],
    cwd: str,
    network: bool,
    keep_setuid: bool,
) -> list[str]:
    """The argv prefix that runs a command inside the sandbox (append ``--`` and the command)."""
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try"]
    if not network:
        args.append("--unshare-net")
    # As root bwrap would keep every capability: keep only what the launcher needs to
    # empty the bounding set (SETPCAP) and drop the uid, then drops them too.
    args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETPCAP"]
    if keep_setuid:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    args += system_args()
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp",
             "--perms", "1777", "--tmpfs", "/dev/shm", "--ro-bind-try", "/sys", "/sys"]
    args += interpreter_args()
    args += parent_dirs([*read, *write])
    for path in read:
        args += ["--ro-bind", path, path]
    for path in write:
        args += ["--bind", path, path]
    args += ["--unsetenv", "JPY_PARENT_PID", "--chdir", cwd]
    return args
