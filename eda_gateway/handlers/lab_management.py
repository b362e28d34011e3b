"""Installing or enabling JupyterLab extensions and plugins, and rebuilding JupyterLab, is for admins.

JupyterLab's ``/lab/api/extensions`` (pip install into the server's
environment) and ``/lab/api/plugins`` (enable/disable for everyone) only check
that the caller is logged in, not the authorizer. Their handlers get their
arguments (the managers) from JupyterLab, so instead of re-registering them we
swap each rule's handler class for an admin-only-writes subclass, keeping the
rule and its arguments.
"""

from __future__ import annotations

from tornado import web
from tornado.routing import Router

from ..authorization import ADMIN, handler_has_scope

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# jupyterlab.handlers.*_manager_handler, and build_handler: a build runs yarn and webpack
# as the server's user, outside every kernel limit, and one user could cancel another's
GUARDED = ("ExtensionHandler", "PluginHandler", "BuildHandler")


class AdminOnlyWritesMixin:
    async def prepare(self):
        await super().prepare()
        if self.request.method in READ_METHODS:
            return
        if not handler_has_scope(self, ADMIN):
            raise web.HTTPError(403, "only admins may install, remove, enable or disable JupyterLab extensions, or build JupyterLab")


def walk_rules(router):
    for rule in getattr(router, "rules", []):
        yield rule
        if isinstance(rule.target, Router):
            yield from walk_rules(rule.target)


def guard_lab_management(web_app) -> int:
    """Make writes to JupyterLab's extension and plugin managers admin-only; returns rules guarded."""
    guarded = 0
    for rule in walk_rules(web_app.default_router):
        target = rule.target
        if (
            isinstance(target, type)
            and target.__name__ in GUARDED
            and target.__module__.startswith("jupyterlab.")
        ):
            rule.target = type(f"AdminOnly{target.__name__}", (AdminOnlyWritesMixin, target), {})
            guarded += 1
    return guarded
