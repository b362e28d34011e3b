"""Per-user contents: each user's API paths are rooted at ``<root_dir>/<user_id>/``.

The single translation point is ``_get_os_path``: API paths stay exactly what
the user sees (``Untitled.ipynb``), while the file lands in the user's folder.
Admins keep the whole ``root_dir`` (they see every user's folder).
"""

from __future__ import annotations

import os

from jupyter_server.services.contents.filecheckpoints import AsyncFileCheckpoints
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.web import HTTPError
from traitlets import default

from .users import InvalidUsername, current_username, user_id
from .workspaces import ensure_private_dir


def gateway_of(obj):
    """The EDAGateway extension app wired into a manager (see EDAGateway.initialize_settings)."""
    return getattr(obj, "eda_gateway", None)


def user_root(server_root: str, username: str | None, gateway) -> str:
    """The folder a user's API paths are relative to."""
    server_root = os.path.abspath(server_root)
    if username is None or gateway is None or gateway.is_admin(username):
        return server_root
    try:
        folder = os.path.join(server_root, user_id(username))
    except InvalidUsername as e:
        raise HTTPError(403, str(e)) from e
    return ensure_private_dir(folder)


class UserRootMixin:
    """Resolve API paths inside the calling user's folder, never outside it."""

    def _get_os_path(self, path):
        server_root = os.path.abspath(self.root_dir)
        root = user_root(server_root, current_username(), self._owner_gateway())
        if root == server_root:
            return super()._get_os_path(path)
        relative = os.path.relpath(root, server_root)
        os_path = super()._get_os_path(f"{relative}/{path.strip('/')}" if path.strip("/") else relative)
        resolved = os.path.abspath(os_path)
        if resolved != root and not resolved.startswith(root + os.sep):
            raise HTTPError(404, f"{path} is outside your folder")
        return os_path

    def _owner_gateway(self):
        return gateway_of(self)


class EDAFileCheckpoints(UserRootMixin, AsyncFileCheckpoints):
    """Checkpoints stored next to the user's own files."""

    def _owner_gateway(self):
        return gateway_of(self.parent)


class EDAContentsManager(UserRootMixin, AsyncLargeFileManager):
    """Contents API rooted per user."""

    @default("checkpoints_class")
    def _checkpoints_class_default(self):
        return EDAFileCheckpoints
