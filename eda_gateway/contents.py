"""Per-user contents: each user's API paths are rooted at ``<root_dir>/<user_id>/``.

The single translation point is ``_get_os_path``: API paths stay exactly what
the user sees (``Untitled.ipynb``), while the file lands in the user's folder.
Admins keep the whole ``root_dir`` (they see every user's folder).

Paths are checked where they lead, symlinks resolved: a kernel can plant a link
in its user's folder (``ln -s ../alice/secret.csv``), and the server, which may
read everything, must not follow it out. ``/files/`` is served from the caller's
folder the same way (jupyter_server's handler serves ``root_dir`` to everyone).
"""

from __future__ import annotations

import asyncio
import binascii
import errno
import os
import re
import stat
from collections.abc import Callable
from contextlib import contextmanager
from functools import cached_property

from jupyter_server.base.handlers import AuthenticatedFileHandler
from nbformat.sign import NotebookNotary
from jupyter_server.services.contents.filecheckpoints import AsyncFileCheckpoints
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.web import HTTPError
from traitlets import Float, default, validate

from .authorization import SERVER, Actor, Ownership
from .limits import require_positive
from .quotas import MIB, SETTING, is_quota_error
from .users import InvalidUsername, current_actor, current_username, user_id
from .workspaces import ensure_private_dir


BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
BASE64_PIECE = 4 * 1024 * 1024  # characters decoded at once: a multiple of 4


def write_base64(f, content: str) -> None:
    """Decode ``content`` into ``f`` a piece at a time: jupyter_server decodes a 95 MB upload
    whole (an ASCII copy, then the bytes), on top of the text the server already holds."""
    for start in range(0, len(content), BASE64_PIECE):
        f.write(binascii.a2b_base64(content[start:start + BASE64_PIECE].encode("ascii")))


def folder_for(server_root: str, actor: Actor, ownership: Ownership | None, quotas=None) -> str:
    """The folder the actor's API paths are relative to: the whole root for the server
    and admins, else the user's own (created private). Before eda_gateway has wired its
    ownership service only the server itself has a folder."""
    server_root = os.path.abspath(server_root)
    if actor is SERVER:
        return server_root
    if ownership is None:
        raise HTTPError(403, "eda_gateway is not running")  # fail closed, as the authorizer does
    try:
        username = ownership.folder_of(actor)
    except PermissionError as e:
        raise HTTPError(403, str(e)) from e
    if username is None:
        return server_root
    try:
        folder = os.path.join(server_root, user_id(username))
    except InvalidUsername as e:
        raise HTTPError(403, str(e)) from e
    if quotas is not None:
        quotas.ensure(username)  # the folder is the user's disk volume (eda_gateway/quotas.py)
    return ensure_private_dir(folder)


class UserFolders:
    """Where a user's files are: their content folder and their kernels' workspace (on their
    disk volume when there are disk quotas). For isolation and the kernel manager."""

    def __init__(self, server_root: str, workspaces, ownership: Ownership, quotas=None):
        self.server_root = os.path.abspath(server_root)
        self.workspaces = workspaces  # eda_gateway.workspaces.Workspaces
        self.ownership = ownership
        self.quotas = quotas  # eda_gateway.quotas.DiskQuotas, or None

    @property
    def workspaces_root(self) -> str:
        return self.workspaces.root

    def content_of(self, actor: Actor) -> str:
        return folder_for(self.server_root, actor, self.ownership, self.quotas)

    def workspace_of(self, username: str) -> str:
        return self.workspaces.path_for(username)

    def ensure_workspace(self, username: str) -> str:
        return self.workspaces.ensure(username)

    def on_own_volume(self, username: str, path: str) -> bool:
        return self.quotas is not None and self.quotas.owner_of(path) == username


def inside(path: str, root: str) -> bool:
    """Whether ``path``, symlinks resolved, is ``root`` or below it."""
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real == real_root or real.startswith(real_root + os.sep)


class OutsideYourFolder(PermissionError, HTTPError):
    """A 404 for the request; also an EACCES OSError, so that jupyter_server's
    directory listing skips such an entry (a planted link) instead of failing."""

    def __init__(self, path: str) -> None:
        PermissionError.__init__(self, errno.EACCES, "outside your folder")
        HTTPError.__init__(self, 404, f"{path} is outside your folder".replace("%", "%%"))


class UserRootMixin:
    """Resolve API paths inside the calling user's folder, never outside it."""

    def _user_root(self) -> str | None:
        """The caller's folder; None for admins (the whole root_dir)."""
        server_root = os.path.abspath(self.root_dir)
        root = folder_for(server_root, current_actor(), self._ownership(), self._disk_quotas())
        return None if root == server_root else root

    def _get_os_path(self, path):
        root = self._user_root()
        if root is None:
            return super()._get_os_path(path)
        relative = os.path.relpath(root, os.path.abspath(self.root_dir))
        os_path = super()._get_os_path(f"{relative}/{path.strip('/')}" if path.strip("/") else relative)
        return self._inside_user_root(os_path, path, root)

    def _inside_user_root(self, os_path: str, path: str, root: str | None) -> str:
        if root is not None and not inside(os_path, root):
            raise OutsideYourFolder(path)
        return os_path

    # set when eda_gateway wires its services (EDAGateway._wire_services)
    ownership: Ownership | None = None
    disk_quotas = None  # eda_gateway.quotas.DiskQuotas, or None: no disk quota
    uid_of_files: Callable[[str], int | None] | None = None  # isolation's (the uid layer), or None

    def _ownership(self) -> Ownership | None:
        return self.ownership

    def _disk_quotas(self):
        return self.disk_quotas

    def _uid_of_files(self):
        return self.uid_of_files

    def _hand_over(self, os_path: str) -> None:
        """Give what the server just made in the caller's folder to the uid the caller's
        kernels run as (uid isolation): else their own code could not change an uploaded
        file or write into a folder made in the file browser."""
        username = current_username()
        uid_of_files = self._uid_of_files()
        ownership = self._ownership()
        if username is None or uid_of_files is None or ownership is None:
            return
        if ownership.sees_everything(username):
            uid = self._owner_of_user_folder(os_path)
        else:
            uid = uid_of_files(username)
        if uid is not None:
            os.chown(os_path, uid, uid, follow_symlinks=False)

    def _owner_of_user_folder(self, os_path: str) -> int | None:
        """An admin writing into a user's folder: that folder's owner, once it is a
        user's uid (their kernel has run); None for root-owned or shared places."""
        server_root = os.path.realpath(self.root_dir)
        relative = os.path.relpath(os.path.realpath(os_path), server_root)
        top = relative.split(os.sep, 1)[0]
        if top == os.pardir or os.sep not in relative:
            return None  # outside the root, the root itself, or right in the root
        owner = os.stat(os.path.join(server_root, top), follow_symlinks=False).st_uid
        return owner or None


class EDAFileCheckpoints(UserRootMixin, AsyncFileCheckpoints):
    """Checkpoints stored next to the user's own files."""

    # the contents manager's collaborators (our parent's)
    def _ownership(self) -> Ownership | None:
        return getattr(self.parent, "ownership", None)

    def _disk_quotas(self):
        return getattr(self.parent, "disk_quotas", None)

    def _uid_of_files(self):
        return getattr(self.parent, "uid_of_files", None)

    def checkpoint_path(self, checkpoint_id, path):
        # the checkpoint folder is joined after _get_os_path: a planted
        # `.ipynb_checkpoints` link is checked here, before it is created or used
        root = self._user_root()
        parent = ("/" + path.strip("/")).rsplit("/", 1)[0].strip("/")
        self._inside_user_root(os.path.join(self._get_os_path(parent), self.checkpoint_dir), path, root)
        return self._inside_user_root(super().checkpoint_path(checkpoint_id, path), path, root)

    async def create_checkpoint(self, contents_mgr, path):
        model = await super().create_checkpoint(contents_mgr, path)
        made = self.checkpoint_path(model["id"], path)
        self._hand_over(os.path.dirname(made))
        self._hand_over(made)
        return model


class UserFilesHandler(AuthenticatedFileHandler):
    """``/files/<path>`` from the caller's own folder (admins: the whole root_dir)."""

    async def prepare(self, *args, **kwargs):
        await super().prepare(*args, **kwargs)
        gateway = self.settings.get("eda_gateway")
        if gateway is None:
            raise HTTPError(403, "eda_gateway is not running")  # fail closed, as the authorizer does
        if self.current_user is not None:
            self.root = folder_for(self.root, self.current_user.username, getattr(self.contents_manager, "ownership", None),
                                   getattr(self.contents_manager, "disk_quotas", None))

    def validate_absolute_path(self, root, absolute_path):
        if not inside(absolute_path, root):
            raise HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)


class EDAContentsManager(UserRootMixin, AsyncLargeFileManager):
    """Contents API rooted per user."""

    max_read_mb = Float(
        100,
        config=True,
        help="Largest file the contents API reads into the server's memory (MB). A kernel can "
        "write a file of many GB; opening it in JupyterLab would load it whole, base64 and all, "
        "into the one server everybody shares. /files/ still streams it.",
    )

    @property
    def notary(self):
        """Each user signs (trusts) notebooks with their own secret and database.

        jupyter_server keeps one notary for the server: a notebook alice trusts (or saves
        with ``trusted`` cells) would be trusted for everyone, and its HTML/JavaScript
        outputs would run in an admin's browser session when the admin opens it.
        """
        username = current_username()
        if username is None:
            return self._shared_notary
        notary = self._notaries.get(username)
        if notary is None:
            base = self._shared_notary.data_dir
            os.makedirs(base, exist_ok=True)
            folder = ensure_private_dir(os.path.join(ensure_private_dir(os.path.join(base, "eda_notary")),
                                                     user_id(username)))
            notary = self._notaries[username] = NotebookNotary(parent=self, data_dir=folder)
        return notary

    @cached_property
    def _shared_notary(self):
        return NotebookNotary(parent=self)

    @cached_property
    def _notaries(self) -> dict:
        return {}

    @validate("max_read_mb")
    def _positive(self, proposal):
        return require_positive(proposal)

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        if content:
            os_path = self._get_os_path(path)
            if os.path.isfile(os_path):
                size = os.stat(os_path).st_size
                if size > self.max_read_mb * 1e6:
                    raise HTTPError(
                        413,
                        f"{path} is {size / 1e6:.0f} MB, more than the {self.max_read_mb:g} MB the contents "
                        "API reads; read it in a kernel, or download it from /files/".replace("%", "%%"),
                    )
        return await super().get(path, content=content, type=type, format=format, **kwargs)

    @default("checkpoints_class")
    def _checkpoints_class_default(self):
        return EDAFileCheckpoints

    @default("files_handler_class")
    def _files_handler_class_default(self):
        return UserFilesHandler

    async def save(self, model, path=""):
        with self._disk_quota(path):
            saved = await super().save(model, path)  # files, notebooks, folders, upload chunks
        self._hand_over(self._get_os_path(path))
        return saved

    async def _save_file(self, os_path, content, format):
        # only plain unbroken base64 (JupyterLab's): its pieces decode to exactly the whole's
        # bytes, and a bad length is seen before anything is written
        if format != "base64" or len(content) <= BASE64_PIECE or len(content) % 4 or not BASE64.fullmatch(content):
            return await super()._save_file(os_path, content, format)
        with self.atomic_writing(os_path, text=False) as f:
            await asyncio.get_running_loop().run_in_executor(None, write_base64, f, content)

    async def copy(self, from_path, to_path=None):
        with self._disk_quota(to_path or from_path):
            return await super().copy(from_path, to_path)

    @contextmanager
    def _disk_quota(self, path: str):
        """A write that ran out of space answers 507 naming the quota (jupyter_server: a 500)."""
        os_path = self._get_os_path(path)
        existed = os.path.lexists(os_path)
        try:
            yield
        except (HTTPError, OSError) as e:
            # jupyter_server wraps it in a 500, sometimes after a second error (its
            # atomic write then fails to rename the temporary file): look down the chain
            cause, seen = e, set()
            while cause is not None and not is_quota_error(cause) and id(cause) not in seen:
                seen.add(id(cause))
                cause = cause.__cause__ or cause.__context__
            if cause is None or not is_quota_error(cause):
                raise
            if not existed and stat.S_ISREG(os.lstat(os_path).st_mode if os.path.lexists(os_path) else 0):
                os.unlink(os_path)  # the new file's partial content: what the failed write began
            raise self._quota_full(path) from cause

    def _quota_full(self, path: str) -> HTTPError:
        quotas = self._disk_quotas()
        try:
            owner = quotas.owner_of(self._get_os_path(path)) if quotas is not None else None
        except (OSError, HTTPError):
            owner = None
        if owner is None:
            return HTTPError(507, f"Not saved: {path}: no space left on the server's disk".replace("%", "%%"))
        usage = quotas.usage(owner) or {}
        quotas.exceeded(owner, {**usage, "source": "contents", "path": path})
        limit_mb = usage.get("limit_bytes", 0) // MIB
        free_mb = usage.get("free_bytes", 0) / MIB
        return HTTPError(
            507,
            f"Not saved: {path}: the disk quota of {limit_mb} MiB ({SETTING}) is full "
            f"({free_mb:.1f} MiB free); delete files, or ask an admin to raise it".replace("%", "%%"),
        )
