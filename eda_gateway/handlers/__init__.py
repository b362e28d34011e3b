"""REST handlers of CONTRACT.md: a thin layer over the services, one module per topic."""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

from .base import API_PREFIX, EDAAPIHandler


def all_handlers() -> list[tuple[str, type]]:
    """(pattern, handler) pairs, relative to the server's base_url."""
    from . import core
    from .admin import routes as admin_routes
    from .execute import CATCH_ALL
    from .execute import handlers as execute_handlers
    from .ratelimit import routes as ratelimit_routes
    from .stats import routes as stats_routes

    routes: list[tuple[str, type]] = []
    routes.extend(execute_handlers())
    routes.extend(core.routes)
    routes.extend(ratelimit_routes)
    routes.extend(stats_routes)
    routes.extend(admin_routes)
    if find_spec("jupyterlab_server"):  # lab extra installed: JupyterLab settings/workspaces per user
        routes.extend(import_module(".lab", __name__).routes)
    routes.append(CATCH_ALL)  # keep last: JSON 404 for unknown paths under API_PREFIX
    return routes


__all__ = ["API_PREFIX", "EDAAPIHandler", "all_handlers"]
