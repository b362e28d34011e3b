"""The isolation service: picks layers at start, then confines each kernel launch.

``wrap(provisioner, launch_kwargs)`` runs inside the kernel provisioner's
``pre_launch`` (first launch and every restart). It gives the kernel a private
folder ``<runtime root>/<kernel_id>/`` holding its connection file (0600) and,
when the kernel cannot use TCP, its IPC sockets; then it rewrites the launch
command so the kernel starts inside the chosen layers:

    bwrap [binds...] -- python -m eda_gateway.isolation.launch SPEC -- <kernel argv>
    (landlock + uid drop happen in the launcher; without bwrap it is the outermost)
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import sys
import tempfile
import time

from collections.abc import Callable
from typing import Protocol

from jupyter_client.connect import port_names
from jupyter_client.provisioning.local_provisioner import LocalPortCache

from ..users import user_id
from . import bwrap, layers
from .uids import UidAllocator, give_to, reachable_by

ANONYMOUS = "-anonymous"  # kernels started without an owner (server-internal)
# What a kernel may read besides its own folders (Landlock); bwrap shows the same tree.
READ_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt", "/proc", "/sys",
              "/run/systemd/resolve")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # eda_gateway/, for the launcher


RUNTIME_PREFIX = "eda-kernels-"


def remove_dead_runtime_roots() -> None:
    """Kernel folders of servers that died without cleaning up (``eda-kernels-srv-<pid>-<start>-XXXX``)."""
    from ..sandbox.base import instance_alive  # here: the sandbox package imports us

    for path in glob.glob(os.path.join(tempfile.gettempdir(), RUNTIME_PREFIX + "srv-*")):
        instance = os.path.basename(path)[len(RUNTIME_PREFIX):].rsplit("-", 1)[0]
        try:
            ours = os.lstat(path).st_uid == os.geteuid() and os.path.isdir(path) and not os.path.islink(path)
        except OSError:
            continue
        if ours and not instance_alive(instance):
            shutil.rmtree(path, ignore_errors=True)


def ephemeral_range() -> tuple[int, int]:
    """The OS's port range for port 0 binds: where kernel ports (ours and others') live."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


class UserFolders(Protocol):
    """Where a user's files are (eda_gateway/contents.py ``UserFolders``)."""

    workspaces_root: str

    def workspace_of(self, username: str) -> str: ...

    def ensure_workspace(self, username: str) -> str: ...

    def content_of(self, username: str) -> str: ...

    def on_own_volume(self, username: str, path: str) -> bool: ...


class Isolation:
    def __init__(self, config, log, *, server_root: str, folders: UserFolders,
                 datasets_for: Callable[[str], list[str]], single_user: bool,
                 host: layers.HostLayers | None = None):
        """``config``: EDAIsolation; ``datasets_for(owner)``: the dataset paths the owner's kernels may read."""
        self.log = log
        self.server_root = os.path.abspath(server_root)
        self.folders = folders
        self.datasets_for = datasets_for
        self.single_user = single_user
        self.choice = layers.parse_choice(config.isolation)
        self.allow_network = bool(config.allow_network)
        self.host = host or layers.HostLayers.detect()
        content_root = self.server_root
        self.uids = UidAllocator(
            dict(config.user_uids), tuple(config.uid_range),
            anchor_of=lambda username: os.path.join(content_root, user_id(username)),
            scanned=[content_root, folders.workspaces_root],
        )
        self.active: list[str] = []
        self.warning: str | None = None  # shown in system-stats when kernels run less confined than usual
        self.runtime_root: str | None = None

    # --- life of the service ---------------------------------------------------

    def start(self) -> list[str]:
        """Choose the layers; IsolationUnavailable if an explicit choice cannot be had."""
        wanted = self.choice if self.choice is not None else list(self.host.available)
        missing = {n: self.host.missing[n] for n in wanted if n not in self.host.available}
        if self.choice is None and "uid" in wanted and self.single_user:
            # one user, whose files the server's user owns: a kernel under another uid could
            # not write them (a plain jupyter lab's kernels run as the server's user)
            wanted.remove("uid")
            self.log.info("eda_gateway: isolation layer uid not used: one person's server")
        if "uid" in wanted and "uid" not in missing and "bwrap" not in wanted:
            why = self._uid_unreachable()
            if why:
                missing["uid"] = why
        if missing and self.choice is not None:
            reasons = "; ".join(f"{n}: {why}" for n, why in missing.items())
            raise layers.IsolationUnavailable(f"{layers.SETTING}={self.choice!r} cannot be had here: {reasons}")
        self.active = [n for n in wanted if n not in missing]
        for name, why in missing.items():
            self.log.warning("eda_gateway: isolation layer %s not used: %s", name, why)
        self._check_floor(missing)
        if self.active:
            from ..sandbox.base import instance_name

            remove_dead_runtime_roots()
            self.runtime_root = tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{instance_name()}-")
            os.chmod(self.runtime_root, 0o711)  # kernels (other uids) may pass, never list
        self.log.info(
            "eda_gateway: kernel isolation: %s (choice %s, network %s, landlock ABI %s)",
            ", ".join(self.active) or "NONE - kernels of different users can reach each other",
            "auto" if self.choice is None else ",".join(self.choice) or "none",
            "allowed" if self.allow_network else "off",
            self.host.landlock_abi,
        )
        return self.active

    def _check_floor(self, missing: dict[str, str]) -> None:
        """What every confined kernel gets whatever the layers: no privileges (the launcher)
        and no sight of other processes (bwrap's pid namespace, else a private /proc).
        Where the host cannot give that, only an explicit ``isolation = "none"`` runs kernels."""
        self.warning = None
        if not self.active:
            if self.choice == []:
                self.warning = ("isolation is 'none': kernels run with the server's privileges and can reach "
                                "each other, the server and its tokens")
                self.log.warning("eda_gateway: " + "!" * 20 + " %s " + "!" * 20, self.warning)
                return
            why = "no isolation layer is available: " + "; ".join(
                f"{n}: {w}" for n, w in {**self.host.missing, **missing}.items())
        else:
            why = None if "bwrap" in self.active else self.host.no_private_proc
        if why is None:
            return
        message = (f"{layers.SETTING}={'auto' if self.choice is None else ','.join(self.choice)!r}: kernels cannot "
                   f"be confined here ({why}); install bubblewrap or run the server as root, or set "
                   f"{layers.SETTING} = 'none' to run them unconfined")
        if self.choice is None and self.single_user:
            # one user: nobody else's kernels or tokens to protect (a plain jupyter lab's kernels)
            self.warning = message
            self.log.warning("eda_gateway: single-user mode: %s", message)
            return
        raise layers.IsolationUnavailable(message)

    def _uid_unreachable(self) -> str | None:
        """Without bwrap the uid kernels run in the host's tree: can they reach what they need?"""
        probe_uid = self.uids.low
        paths = [self.folders.workspaces_root, self.server_root]
        why = reachable_by(probe_uid, paths, sys.executable)
        if why:
            return (f"uid {probe_uid} cannot reach the interpreter or the workspace/root folders ({why}); "
                    "make them searchable by other users, or add 'bwrap'")
        return None

    def stop(self) -> None:
        if self.runtime_root:
            shutil.rmtree(self.runtime_root, ignore_errors=True)

    def on_kernel_event(self, event: str, kernel_id: str, owner: str) -> None:
        if event == "stopped" and self.runtime_root:
            shutil.rmtree(self._kernel_dir(kernel_id), ignore_errors=True)

    # --- one launch ----------------------------------------------------------

    def _kernel_dir(self, kernel_id: str) -> str:
        return os.path.join(self.runtime_root, kernel_id)

    def uid_of_files(self, username: str) -> int | None:
        """The uid that should own what the server makes for ``username`` (None: no uid layer)."""
        return self.uids.uid_for(username) if "uid" in self.active else None

    def uses_ipc(self) -> bool:
        # Unix sockets in a private folder: unreachable for other uids (uid) or
        # across the missing network (bwrap). Landlock alone keeps TCP: it can
        # rule TCP ports but not unix socket paths.
        return "uid" in self.active or ("bwrap" in self.active and not self.allow_network)

    def wrap(self, provisioner, owner: str | None, launch_kwargs: dict) -> dict:
        if not self.active:
            return launch_kwargs
        command = launch_kwargs["cmd"][0]
        if shutil.which(command, path=(launch_kwargs.get("env") or os.environ).get("PATH")) is None:
            # the launcher would exec it only later, in the kernel: fail the start here, as Popen does
            raise FileNotFoundError(errno.ENOENT, f"kernel command not found: {command}", command)
        km = provisioner.parent
        kernel_id = str(provisioner.kernel_id)
        owner = owner or ANONYMOUS
        kdir = self._kernel_dir(kernel_id)
        os.makedirs(kdir, mode=0o700, exist_ok=True)
        cmd = self._private_connection(provisioner, km, kdir, launch_kwargs)

        workspace = self.folders.workspace_of(owner) if owner != ANONYMOUS else None
        content = self.folders.content_of(owner) if owner != ANONYMOUS else None
        own_dirs = [p for p in (workspace, content, kdir) if p and os.path.isdir(p)]
        datasets = list(self.datasets_for(owner)) if owner != ANONYMOUS else []
        env = dict(launch_kwargs.get("env") or os.environ)
        env["HOME"] = workspace or kdir
        env["EDA_ISOLATION"] = ",".join(self.active)

        uid = None
        if "uid" in self.active:
            uid = self.uids.uid_for(owner)
            on_volume = self.folders.on_own_volume(owner, workspace or "")  # theirs alone
            if workspace in own_dirs and not on_volume and self._foreign(workspace, uid):
                own_dirs[own_dirs.index(workspace)] = self._replace_foreign(workspace, owner)
            for path in own_dirs:
                if path != self.server_root:  # admins share the root
                    give_to(path, uid, uid)
            give_to(km.connection_file, uid, uid, 0o600)
            env["USER"] = env["LOGNAME"] = f"eda_{user_id(owner)}"

        cwd = launch_kwargs.get("cwd") or workspace or kdir
        # the launcher runs under every choice of layers: it drops every privilege
        spec = {"private_proc": "bwrap" not in self.active and self.host.no_private_proc is None,
                "landlock": self._landlock_spec(km, own_dirs, datasets) if "landlock" in self.active else None,
                "uid": uid, "gid": uid, "cwd": cwd}
        cmd = [sys.executable, "-m", "eda_gateway.isolation.launch", json.dumps(spec), "--", *cmd]
        if "bwrap" in self.active:
            # Signals cannot cross into the pid namespace: interrupt by message.
            km.kernel_spec.interrupt_mode = "message"
            env.pop("JPY_PARENT_PID", None)
            prefix = bwrap.command(
                self.host.bwrap_path,
                read=[p for p in (*datasets, PACKAGE_DIR) if os.path.exists(p)],
                write=own_dirs,
                cwd="/" if uid is not None else cwd,  # the launcher enters cwd as the new uid
                network=self.allow_network,
                keep_setuid=uid is not None,
            )
            cmd = [*prefix, "--", *cmd]
        return {**launch_kwargs, "cmd": cmd, "env": env}

    @staticmethod
    def _foreign(path: str, uid: int) -> bool:
        return os.lstat(path).st_uid not in (os.geteuid(), uid)

    def _replace_foreign(self, workspace: str, owner: str) -> str:
        """A workspace that belongs to another uid was made by someone else (in a shared
        /tmp, another user's kernel can, under the uid layer alone): what it holds, say
        an IPython startup file, must not run in this user's kernels. Move it aside."""
        aside = f"{workspace}.foreign-{int(time.time())}"
        os.rename(workspace, aside)
        self.log.warning("eda_gateway: %s belonged to another uid; moved aside to %s", workspace, aside)
        return self.folders.ensure_workspace(owner)

    def _private_connection(self, provisioner, km, kdir: str, launch_kwargs: dict) -> list[str]:
        """Move the connection file into the kernel's folder (and switch to IPC if needed)."""
        cmd = list(launch_kwargs["cmd"])
        new_file = os.path.join(kdir, os.path.basename(km.connection_file))
        old_file = km.connection_file
        if old_file != new_file:
            if km.transport == "tcp" and getattr(provisioner, "ports_cached", False):
                cache = LocalPortCache.instance()
                for name in port_names:
                    cache.return_port(getattr(km, name))
            km.cleanup_connection_file()
            km.connection_file = new_file
            if self.uses_ipc():
                km.transport = "ipc"
                km.ip = os.path.join(kdir, "ipc")
                for name in port_names:
                    setattr(km, name, 0)
            env = launch_kwargs.get("env") or {}
            km.write_connection_file(jupyter_session=env.get("JPY_SESSION_NAME", ""))
            provisioner.connection_info = km.get_connection_info()
            cmd = [arg.replace(old_file, new_file) for arg in cmd]
        return cmd

    def _landlock_spec(self, km, own_dirs: list[str], datasets: list[str]) -> dict:
        read = [*READ_PATHS, sys.base_prefix, sys.prefix, *datasets]
        # Port 0: ipykernel's pipe for forked children binds an ephemeral port.
        tcp_ports = [0, *(getattr(km, n) for n in port_names)] if km.transport == "tcp" else [0]
        if self.allow_network:
            low, high = ephemeral_range()
            # Everything but the range kernel ports are taken from: the
            # internet stays open, other kernels' ZMQ ports do not.
            connect = [[1, low - 1], [high + 1, 65535]]
        else:
            connect = []
        # In bwrap's empty network namespace there is nobody to reach: leave TCP to it.
        tcp = not ("bwrap" in self.active and not self.allow_network)
        return {"read": read, "write": own_dirs, "devices": list(DEVICES), "tcp": tcp,
                "bind_ports": tcp_ports, "connect_ports": connect}
