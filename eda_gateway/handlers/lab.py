"""JupyterLab's settings and workspaces, kept per user.

jupyterlab_server stores them server-wide (``LabApp.user_settings_dir``,
``LabApp.workspaces_dir``): alice's theme would become bob's, and bob could read
or overwrite the workspace that shows which files alice has open. These
subclasses of its handlers serve the same URLs, with one change: the directory
is ``<configured dir>/<user_id>/`` (mode 0700) of the calling user, admins
included. Defaults and ``overrides.json`` (``app_settings_dir``) and the
schemas stay server-wide and read-only.

They win over JupyterLab's own handlers because extensions are loaded in
alphabetical order (``eda_gateway`` before ``jupyterlab``) and tornado tries the
handler groups in the order they were added. Importing this module needs
jupyterlab_server (the ``lab`` extra); ``handlers/__init__.py`` skips it
otherwise.
"""

from __future__ import annotations

import os
import re

from jupyterlab_server.settings_handler import SettingsHandler
from jupyterlab_server.settings_utils import SchemaHandler
from jupyterlab_server.translations_handler import TranslationsHandler
from jupyterlab_server.workspaces_handler import WorkspacesHandler, WorkspacesManager
from tornado import web

from ..users import InvalidUsername, user_id
from .base import parse_json
from ..workspaces import ensure_private_dir

# The LabApp's extension name: settings["lab"] is the running LabApp.
LAB_APP = "lab"

# JupyterLab's default URLs (LabApp.app_url is "/lab").
SETTINGS_URL = "/lab/api/settings"
TRANSLATIONS_URL = "/lab/api/translations"
WORKSPACES_URL = "/lab/api/workspaces"

# "@scope/package:plugin". No part may start with "." (no "..", no hidden
# names), so a schema name can only address a file inside the user's folder.
_PART = r"[A-Za-z0-9_~-][A-Za-z0-9_.~-]*"
SCHEMA_NAME = re.compile(rf"(?:@{_PART}/)?{_PART}:{_PART}")

# The names LabHandler serves at /lab/workspaces/<name>; slugify keeps them as is.
WORKSPACE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")


def user_lab_dir(base: str, username: str) -> str:
    """``<base>/<user_id>/``, created private (0700)."""
    try:
        folder = os.path.join(base, user_id(username))
    except InvalidUsername as e:
        raise web.HTTPError(403, str(e)) from e
    os.makedirs(base, exist_ok=True)
    return ensure_private_dir(folder)


class PerUserLabDir:
    """Resolve the configured LabApp directory to the calling user's folder."""

    lab_dir_trait: str  # "user_settings_dir" or "workspaces_dir"

    def lab_app(self):
        app = self.settings.get(LAB_APP)
        if app is None or not getattr(app, self.lab_dir_trait, ""):
            raise web.HTTPError(404, "JupyterLab is not enabled on this server")
        return app

    def calling_user_dir(self) -> str | None:
        """The caller's folder; None for anonymous requests (@authenticated rejects them)."""
        if not self.current_user:
            return None
        return user_lab_dir(getattr(self.lab_app(), self.lab_dir_trait), self.current_user.username)


def server_wide_settings(lab) -> dict:
    """The settings handlers' arguments, without any user's settings directory."""
    return {
        "app_settings_dir": lab.app_settings_dir,
        "schemas_dir": lab.schemas_dir,
        "settings_dir": "",  # set per request in prepare()
        "labextensions_path": lab.extra_labextensions_path + lab.labextensions_path,
        "overrides": None,  # read from app_settings_dir, as jupyterlab_server does when empty
    }


class PerUserSchemaMixin(PerUserLabDir):
    """For handlers reading user settings: settings_dir is the caller's folder."""

    lab_dir_trait = "user_settings_dir"

    def initialize(self, name: str = "eda_gateway", **kwargs) -> None:
        # name: given by ExtensionApp to ExtensionHandlerMixin subclasses (not TranslationsHandler)
        self.name = name
        lab = self.settings.get(LAB_APP)
        if lab is not None:  # else prepare() answers 404
            SchemaHandler.initialize(self, **server_wide_settings(lab))

    async def prepare(self):
        await super().prepare()
        if not self.lab_app().schemas_dir:
            raise web.HTTPError(404, "JupyterLab settings are not enabled on this server")
        self.settings_dir = self.calling_user_dir()


class UserSettingsHandler(PerUserSchemaMixin, SettingsHandler):
    """``/lab/api/settings``: defaults server-wide, changes in the caller's folder."""

    @web.authenticated
    def get(self, schema_name: str = ""):
        check_schema_name(schema_name, allow_empty=True)
        return super().get(schema_name)

    @web.authenticated
    def put(self, schema_name: str) -> None:
        check_schema_name(schema_name)
        check_body_size(self.request.body, "settings")
        parse_json(self.request.body, "settings")
        try:
            return super().put(schema_name)
        except ValueError as e:  # a non-UTF-8 body or a "raw" that is not JSON5: upstream lets these be 500s
            raise web.HTTPError(400, f"invalid settings: {e}") from None
        except RecursionError:  # "raw" (JSON5) nested past the parser's limit
            raise web.HTTPError(400, "invalid settings: nested too deeply") from None


class UserTranslationsHandler(PerUserSchemaMixin, TranslationsHandler):
    """``/lab/api/translations``: the display locale comes from the caller's settings."""


class UserWorkspacesHandler(PerUserLabDir, WorkspacesHandler):
    """``/lab/api/workspaces``: each user lists, loads, saves and deletes only their own."""

    lab_dir_trait = "workspaces_dir"

    def initialize(self, name: str, **kwargs) -> None:
        super().initialize(name, manager=None)  # set per request in prepare()

    async def prepare(self):
        await super().prepare()
        folder = self.calling_user_dir()
        self.manager = WorkspacesManager(folder) if folder else None

    @web.authenticated
    async def get(self, space_name: str = ""):
        check_workspace_name(space_name, allow_empty=True)
        return await super().get(space_name)

    @web.authenticated
    def put(self, space_name: str = "") -> None:
        check_workspace_name(space_name)
        check_body_size(self.request.body, "workspace")
        check_workspace_body(self.request.body)
        return super().put(space_name)

    @web.authenticated
    def delete(self, space_name: str) -> None:
        check_workspace_name(space_name)
        return super().delete(space_name)


def check_schema_name(name: str, allow_empty: bool = False) -> None:
    if (name or not allow_empty) and not SCHEMA_NAME.fullmatch(name):
        raise web.HTTPError(400, f"invalid settings id {name!r}: expected '@scope/package:plugin'")


def check_workspace_name(name: str, allow_empty: bool = False) -> None:
    if (name or not allow_empty) and not WORKSPACE_NAME.fullmatch(name):
        raise web.HTTPError(400, f"invalid workspace name {name!r}: use letters, digits, '-' and '_'")


# Settings are parsed by the pure-Python json5 module on the event loop, at every read;
# JupyterLab's own settings and workspaces are a few kB.
MAX_LAB_BODY_BYTES = 1024 * 1024


def check_body_size(body: bytes, what: str) -> None:
    if len(body or b"") > MAX_LAB_BODY_BYTES:
        raise web.HTTPError(413, f"{what} larger than {MAX_LAB_BODY_BYTES} bytes")


def check_workspace_body(body: bytes) -> None:
    """The shape WorkspacesManager relies on; anything else would be a 500 there."""
    workspace = parse_json(body, "workspace")
    if not (
        isinstance(workspace, dict)
        and isinstance(workspace.get("data"), dict)
        and isinstance(workspace.get("metadata"), dict)
        and isinstance(workspace["metadata"].get("id"), str)
    ):
        raise web.HTTPError(400, 'workspace must look like {"data": {...}, "metadata": {"id": NAME}}')


# The patterns jupyterlab_server registers (base_url is prepended for both).
routes: list[tuple[str, type]] = [
    (SETTINGS_URL + "/?", UserSettingsHandler),
    (SETTINGS_URL + "/(?P<schema_name>.+)", UserSettingsHandler),
    (TRANSLATIONS_URL + "/?", UserTranslationsHandler),
    (TRANSLATIONS_URL + "/(?P<locale>.*)", UserTranslationsHandler),
    (WORKSPACES_URL + "/?", UserWorkspacesHandler),
    (WORKSPACES_URL + "/(?P<space_name>.+)", UserWorkspacesHandler),
]
