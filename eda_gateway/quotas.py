"""Per-user disk quotas: one size-capped filesystem per user, holding their workspace and content folder.

Each user gets a sparse image file ``<disk_root>/images/<user_id>.img``, an ext4
filesystem made with ``-m 0`` (no blocks reserved for root: kernels may run as uid 0
without capabilities, and reserved blocks would be theirs to fill). The server (root)
loop-mounts it at ``<disk_root>/mnt/<user_id>/`` and bind-mounts its ``workspace/`` and
``content/`` folders at the paths the rest of the code uses (``<workspace_root>/eda_user_<id>``,
``<root_dir>/<id>``): nothing else needs to know, and a kernel cannot write past the
filesystem's size whatever uid it runs as (ENOSPC). Project quotas would need the host
filesystem's ``project`` feature; a filesystem per user needs only root and loop devices.

The image is sized so that the usable space (what ``statvfs`` reports free on an empty
volume) is at least ``max_disk_mb``: ext4's metadata (journal, inode tables, ext4's own
reserve) is measured after the first mount and the image grown until the quota fits.
A raised quota grows the image (offline ``resize2fs``) the next time it is mounted; a
lowered one is logged and left (shrinking could lose files).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import logging
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tornado.web import HTTPError

from .users import user_id, username_from_id

log = logging.getLogger(__name__)

MIB = 1024 * 1024
SETTING = "EDASandbox.max_disk_mb"
# a volume with less than this free counts as full (ext4 keeps a few blocks it never hands out)
FULL_BELOW = 1 * MIB
FREE_AGAIN = 4 * MIB  # hysteresis: one full episode, one verdict
REFUSAL_SECONDS = 30.0  # a user whose files do not fit is measured again after this
TOOLS = ("mkfs.ext4", "e2fsck", "resize2fs", "mount")
MOUNT_OPTIONS = "loop,nosuid,nodev"
SUBDIRS = ("workspace", "content")

_MS_BIND = 4096
_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8
_libc = ctypes.CDLL(None, use_errno=True)


class DiskQuotaUnavailable(RuntimeError):
    """This host (or server user) cannot give quotas; the message names the setting."""


class DoesNotFit(HTTPError):
    """A 507 answer: the user's existing files exceed their quota (nothing was moved)."""

    def __init__(self, message: str) -> None:
        super().__init__(507, message.replace("%", "%%"))
        self.message = message


def is_quota_error(error: BaseException | None) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


@dataclass
class Volume:
    username: str
    limit_mb: int
    mountpoint: str
    targets: list  # the host paths its folders are bind-mounted at
    dev: int = -1  # st_dev of the filesystem
    full: bool = False
    exceeded_at: float | None = None


def _check(argv: list[str], ok: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    if done.returncode not in ok:
        why = (done.stderr or done.stdout).decode(errors="replace").strip()[:300]
        raise OSError(f"{argv[0]} failed ({done.returncode}): {why}")


def _loop_devices() -> dict[str, str]:
    """``major:minor`` of each attached loop device -> the file backing it."""
    devices = {}
    for backing in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            with open(backing) as f:
                path = f.read().strip()
            with open(os.path.join(os.path.dirname(os.path.dirname(backing)), "dev")) as f:
                devices[f.read().strip()] = path
        except OSError:
            continue
    return devices


def _wait_until_no_loop_device_backs(image: str, timeout: float = 60.0) -> None:
    """The kernel frees a loop device after its unmount, asynchronously (a kernel worker):
    until then it may still write the image, which must not be grown and checked under it.
    Usually a few ms; over 10 s was seen on a saturated 2-core machine."""
    image = os.path.realpath(image)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if image not in _loop_devices().values():
            return
        time.sleep(0.05)
    raise OSError(f"{image} is still attached to a loop device {timeout:g} s after its unmount")


def _umount(path: str, flags: int = 0) -> int:
    if _libc.umount2(os.fsencode(path), flags | _UMOUNT_NOFOLLOW) == 0:
        return 0
    return ctypes.get_errno()


def _bind(source: str, target: str) -> None:
    """Bind ``source`` onto the directory ``target`` without following a symlink planted
    there: the mount goes onto the folder opened with O_NOFOLLOW, through its fd."""
    fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if _libc.mount(os.fsencode(source), f"/proc/self/fd/{fd}".encode(), None, _MS_BIND, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"bind mount onto {target}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _unescape(field: str) -> str:
    """mountinfo escapes blanks and backslashes as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts() -> list[tuple[str, str]]:
    """(``major:minor``, mount point) of every mount this process sees."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            found.append((parts[2], _unescape(parts[4])))
    return found


def is_mountpoint(path: str) -> bool:
    return any(point == path for _, point in mounts())


def tree_size(path: str) -> int:
    """Bytes the files under ``path`` take once copied (apparent sizes, symlinks as links), never
    following a link."""
    total = 0
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(info.st_mode):
        return 0
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in dirnames + filenames:
            try:
                entry = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += max(entry.st_size, 4096) if stat.S_ISREG(entry.st_mode) else 4096
    return total


def copy_tree(src_fd: int, dst_fd: int, depth: int = 0) -> None:
    """Copy the folder open as ``src_fd`` into ``dst_fd``: files, folders and symlinks (as links,
    never followed), with modes, owners and times. Opened relative to the folder, O_NOFOLLOW:
    a kernel swapping a folder for a link mid-copy makes the open fail."""
    if depth > 64:
        raise OSError(errno.ELOOP, "folders nested too deep to migrate")
    with os.scandir(src_fd) as it:
        entries = list(it)
    for entry in entries:
        info = os.stat(entry.name, dir_fd=src_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(entry.name, dir_fd=src_fd), entry.name, dir_fd=dst_fd)
        elif stat.S_ISDIR(info.st_mode):
            os.mkdir(entry.name, 0o700, dir_fd=dst_fd)
            sub_src = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=src_fd)
            try:
                sub_dst = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dst_fd)
                try:
                    copy_tree(sub_src, sub_dst, depth + 1)
                finally:
                    os.close(sub_dst)
            finally:
                os.close(sub_src)
        elif stat.S_ISREG(info.st_mode):
            fin = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=src_fd)
            try:
                fout = os.open(entry.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                               dir_fd=dst_fd)
                try:
                    with open(fin, "rb", closefd=False) as r, open(fout, "wb", closefd=False) as w:
                        shutil.copyfileobj(r, w, 1024 * 1024)
                finally:
                    os.close(fout)
            finally:
                os.close(fin)
        else:
            log.warning("eda_gateway: not migrating %s: not a file, folder or link", entry.path)
            continue
        os.chown(entry.name, info.st_uid, info.st_gid, dir_fd=dst_fd, follow_symlinks=False)
        if not stat.S_ISLNK(info.st_mode):
            os.chmod(entry.name, stat.S_IMODE(info.st_mode), dir_fd=dst_fd)
        os.utime(entry.name, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=dst_fd, follow_symlinks=False)


class DiskQuotas:
    """``ensure(user)`` mounts (creating on first use) the user's volume; ``usage(user)``;
    ``check()`` on every sample; ``release_all()`` at stop, after the kernels are gone."""

    def __init__(
        self,
        disk_root: str,
        limit_mb_for: Callable[[str], int],
        folders_of: Callable[[str], dict],
        log=log,
        on_full: Callable[[str, dict], None] | None = None,
        uid_of: Callable[[str], int | None] = lambda username: None,
    ):
        self.root = os.path.abspath(disk_root)
        self.images = os.path.join(self.root, "images")
        self.mnt = os.path.join(self.root, "mnt")
        self.limit_mb_for = limit_mb_for
        self.folders_of = folders_of  # username -> {"workspace": path, "content": path or None}
        self.log = log
        self.on_full = on_full
        self.uid_of = uid_of
        self._volumes: dict[str, Volume] = {}
        self._refused: dict[str, tuple[float, str]] = {}  # username -> (when, why): files too big
        self._lock = threading.RLock()
        self._lock_fd: int | None = None

    # --- life of the service ---------------------------------------------------

    @staticmethod
    def unavailable() -> str | None:
        """None if this process can make and mount volumes, else why not."""
        if os.geteuid() != 0:
            return "the server does not run as root (loop mounts need it)"
        if not os.path.exists("/dev/loop-control") and not glob.glob("/dev/loop[0-9]*"):
            return "no loop devices (/dev/loop-control)"
        missing = [t for t in TOOLS if shutil.which(t) is None]
        if missing:
            return f"missing {', '.join(missing)} (install e2fsprogs and mount)"
        return None

    def start(self) -> None:
        """Take ``disk_root``, undo mounts a crashed server left, mount every existing volume."""
        why = self.unavailable()
        if why:
            raise DiskQuotaUnavailable(f"{SETTING} > 0 but {why}; set {SETTING} = 0 to run without disk quotas")
        for path in (self.root, self.images, self.mnt):
            os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(path, 0o700)
        self._lock_fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise DiskQuotaUnavailable(f"EDASandbox.disk_root {self.root} is in use by another running server")
        self._release_leftovers()
        # every volume, not only of users who come back: an admin writing into a user's folder
        # must write into their volume, and the uid layer reads owners off the mounted folders
        for image in sorted(glob.glob(os.path.join(self.images, "*.img"))):
            try:
                self.ensure(username_from_id(os.path.basename(image)[:-len(".img")]))
            except Exception as e:
                self.log.error("eda_gateway: cannot mount the disk volume %s: %s", image, e)

    def release_all(self) -> None:
        """Unmount every volume (bind mounts first). Kernels must be stopped before."""
        with self._lock:
            for volume in list(self._volumes.values()):
                for target in [*volume.targets, volume.mountpoint]:
                    self._unmount(target)
            self._volumes.clear()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _unmount(self, path: str) -> None:
        err = _umount(path)
        if err == errno.EBUSY:  # a process still holds a file: detach now, freed when it lets go
            err = _umount(path, _MNT_DETACH)
        if err not in (0, errno.EINVAL, errno.ENOENT):
            self.log.warning("eda_gateway: cannot unmount %s: %s", path, os.strerror(err))

    def _our_devices(self) -> set[str]:
        """``major:minor`` of the loop devices backed by our images."""
        images = os.path.realpath(self.images) + os.sep
        return {dev for dev, path in _loop_devices().items() if path.startswith(images)}

    def _release_leftovers(self) -> None:
        """Mounts of a server that died without unmounting: detach them (deepest first), so
        that each volume is mounted afresh, at today's paths and size."""
        ours = self._our_devices()
        leftovers = [point for dev, point in mounts() if dev in ours]
        for point in sorted(set(leftovers), key=lambda p: (p.startswith(self.mnt + os.sep), -p.count(os.sep))):
            self.log.warning("eda_gateway: unmounting %s, left behind by an earlier server", point)
            self._unmount(point)

    # --- one user ------------------------------------------------------------

    def image_of(self, username: str) -> str:
        return os.path.join(self.images, user_id(username) + ".img")

    def ensure(self, username: str) -> None:
        """The user's volume, mounted at their folders (made, and existing files copied in, on first use)."""
        if username in self._volumes:
            return
        with self._lock:
            if username in self._volumes:
                return
            try:
                self._mount(username)
            except OSError as e:  # mkfs, mount, fsck, resize: a clear 503, never a 500
                self.log.error("eda_gateway: the disk volume of %s could not be mounted: %s", username, e)
                raise HTTPError(503, "Your disk volume could not be mounted; try again shortly") from e

    def _mount(self, username: str) -> None:
        limit_mb = self.limit_mb_for(username)
        image = self.image_of(username)
        mountpoint = os.path.join(self.mnt, user_id(username))
        os.makedirs(mountpoint, mode=0o700, exist_ok=True)
        new = not os.path.exists(image)
        folders = {k: v for k, v in self.folders_of(username).items() if v}
        if new:
            refused = self._refused.get(username)
            if refused and time.monotonic() - refused[0] < REFUSAL_SECONDS:
                raise DoesNotFit(refused[1])  # not a new mkfs on every request of that user
            needed = sum(tree_size(t) for t in folders.values())
            if needed > limit_mb * MIB:
                message = self._too_big(username, needed, limit_mb)
                self._refused[username] = (time.monotonic(), message)
                raise DoesNotFit(message)
            self._create(image, limit_mb)
        self._mount_sized(image, mountpoint, limit_mb)
        targets: list[str] = []
        try:
            for sub in SUBDIRS:
                inner = os.path.join(mountpoint, sub)
                if not os.path.isdir(inner):
                    os.mkdir(inner, 0o700)
            if new:
                self._migrate(username, mountpoint, folders, limit_mb)
            for sub, target in folders.items():
                self._prepare_target(target)
                _bind(os.path.join(mountpoint, sub), target)
                targets.append(target)
        except BaseException:
            for target in targets:
                self._unmount(target)
            self._unmount(mountpoint)
            if new:
                os.unlink(image)  # made just now, for nothing: the user's files were never touched
            raise
        self._volumes[username] = Volume(username, limit_mb, mountpoint, targets, dev=os.stat(mountpoint).st_dev)
        self.log.info("eda_gateway: disk volume of %s mounted (%s MiB)", username, limit_mb)

    @staticmethod
    def _prepare_target(target: str) -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.mkdir(target, 0o700)
        except FileExistsError:
            pass
        if not stat.S_ISDIR(os.lstat(target).st_mode):
            raise PermissionError(f"{target} exists and is not a directory")

    def _create(self, image: str, limit_mb: int) -> None:
        fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            # sparse: no space taken yet. Short of ext4's overhead on purpose: _mount_sized grows it
            os.ftruncate(fd, (limit_mb + limit_mb // 64 + 4) * MIB)
        finally:
            os.close(fd)
        try:
            _check(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "root_owner=0:0", image])
        except BaseException:
            os.unlink(image)
            raise

    def _mount_sized(self, image: str, mountpoint: str, limit_mb: int) -> None:
        """Mount; while the usable space is short of the quota (ext4's overhead, or a raised
        quota), unmount, grow the image by the gap and mount again."""
        for _ in range(8):
            if is_mountpoint(mountpoint):
                self._unmount(mountpoint)
            _check(["mount", "-t", "ext4", "-o", MOUNT_OPTIONS, image, mountpoint])
            os.chmod(mountpoint, 0o700)
            info = os.statvfs(mountpoint)
            usable = (info.f_blocks - info.f_bfree + info.f_bavail) * info.f_frsize  # used + free
            gap = limit_mb * MIB - usable
            if gap <= 0:
                if -gap > 2 * max(8, limit_mb // 16) * MIB:
                    self.log.warning("eda_gateway: the disk volume %s is larger than its quota of %s MiB; "
                                     "shrink it by hand (resize2fs) to lower the quota", image, limit_mb)
                return
            self._unmount(mountpoint)
            _wait_until_no_loop_device_backs(image)
            size = os.path.getsize(image) + gap + MIB
            os.truncate(image, size)
            # 1: "errors corrected", e.g. the block bitmap's padding an earlier grow left unset
            _check(["e2fsck", "-f", "-p", image], ok=(0, 1))
            _check(["resize2fs", "-f", image])
        raise OSError(f"{image} could not be grown to {limit_mb} MiB usable")

    def _migrate(self, username: str, mountpoint: str, folders: dict, limit_mb: int) -> None:
        """Copy what the user already has into the fresh volume. The originals stay where they
        are (hidden under the mount, never deleted); if they do not fit, nothing is mounted."""
        todo = {}
        for sub, target in folders.items():
            try:
                info = os.lstat(target)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(info.st_mode):
                continue
            if sub == "workspace" and info.st_uid not in (os.geteuid(), self.uid_of(username)):
                # made by someone else in a shared /tmp (another user's kernel, uid layer alone):
                # what it holds, say an IPython startup file, is not the user's; as isolation does
                aside = f"{target}.foreign-{int(time.time())}"
                os.rename(target, aside)
                self.log.warning("eda_gateway: %s belonged to another uid; moved aside to %s", target, aside)
                continue
            todo[sub] = target
        needed = sum(tree_size(t) for t in todo.values())
        free = os.statvfs(mountpoint).f_bavail * os.statvfs(mountpoint).f_frsize
        if needed > free:
            raise DoesNotFit(self._too_big(username, needed, limit_mb))
        for sub, target in todo.items():
            src = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                dst = os.open(os.path.join(mountpoint, sub), os.O_RDONLY | os.O_DIRECTORY)
                try:
                    copy_tree(src, dst)
                    info = os.fstat(src)
                    os.fchown(dst, info.st_uid, info.st_gid)
                finally:
                    os.close(dst)
            finally:
                os.close(src)
            self.log.info("eda_gateway: moved %s's files from %s into their disk volume", username, target)

    @staticmethod
    def _too_big(username: str, needed: int, limit_mb: int) -> str:
        return (f"{username}'s existing files take {needed / MIB:.1f} MiB, more than the disk quota of "
                f"{limit_mb} MiB ({SETTING}); they were left where they are: remove some, or raise the quota")

    # --- measuring -------------------------------------------------------------

    def owner_of(self, path: str) -> str | None:
        """Whose volume ``path`` (or its nearest existing folder) is on; None: none of ours."""
        while True:
            try:
                dev = os.stat(path).st_dev
                break
            except FileNotFoundError:
                parent = os.path.dirname(path)
                if parent == path:
                    return None
                path = parent
        for username, volume in list(self._volumes.items()):
            if volume.dev == dev:
                return username
        return None

    def usage(self, username: str) -> dict | None:
        """``limit_bytes``, ``used_bytes``, ``free_bytes`` of the user's mounted volume; None if not mounted."""
        volume = self._volumes.get(username)
        if volume is None:
            return None
        info = os.statvfs(volume.mountpoint)
        return {
            "limit_bytes": volume.limit_mb * MIB,
            "used_bytes": (info.f_blocks - info.f_bfree) * info.f_frsize,
            "free_bytes": info.f_bavail * info.f_frsize,
        }

    def status(self, username: str) -> dict:
        """The ``disk`` part of rate-limit-status (openapi.json)."""
        volume = self._volumes.get(username)
        used = self.usage(username)
        exceeded_at = volume.exceeded_at if volume else None
        return {
            "limit_bytes": used["limit_bytes"] if used else self.limit_mb_for(username) * MIB,
            "used_bytes": used["used_bytes"] if used else None,
            "free_bytes": used["free_bytes"] if used else None,
            "full": bool(volume and volume.full),
            "last_exceeded_at": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exceeded_at))
                                 if exceeded_at else None),
        }

    def exceeded(self, username: str, details: dict) -> None:
        """Someone's write failed for want of space (the contents API saw ENOSPC)."""
        volume = self._volumes.get(username)
        if volume is not None:
            volume.exceeded_at = time.time()
        if self.on_full is not None:
            self.on_full(username, details)

    def check(self, *_snapshot) -> None:
        """On every telemetry sample: a volume that just became full is a DiskQuotaExceeded
        (a kernel's write got ENOSPC, or is about to)."""
        for username, volume in list(self._volumes.items()):
            try:
                used = self.usage(username)
            except OSError:
                continue
            if used is None:
                continue
            if not volume.full and used["free_bytes"] < FULL_BELOW:
                volume.full = True
                self.exceeded(username, {**used, "source": "kernel"})
            elif volume.full and used["free_bytes"] >= FREE_AGAIN:
                volume.full = False
