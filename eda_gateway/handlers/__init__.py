"""REST handlers of the API in openapi.json: a thin layer over the services, one module per topic."""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

from jupyter_server.base.handlers import APIHandler
from tornado import web

from .base import API_PREFIX, EDAAPIHandler


def all_handlers() -> list[tuple[str, type]]:
    """(pattern, handler) pairs, relative to the server's base_url."""
    from . import core
    from .admin import routes as admin_routes
    from .execute import CATCH_ALL
    from .execute import handlers as execute_handlers
    from .mcp import routes as mcp_routes
    from .ratelimit import routes as ratelimit_routes
    from .stats import routes as stats_routes

    routes: list[tuple[str, type]] = []
    routes.extend(execute_handlers())
    routes.extend(core.routes)
    routes.extend(ratelimit_routes)
    routes.extend(stats_routes)
    routes.extend(admin_routes)
    routes.extend(mcp_routes)
    if find_spec("jupyterlab_server"):  # lab extra installed: JupyterLab settings/workspaces per user
        routes.extend(import_module(".lab", __name__).routes)
    routes.append(CATCH_ALL)  # keep last: JSON 404 for unknown paths under API_PREFIX
    return routes


class InactiveHandler(EDAAPIHandler):
    """eda_gateway stepped aside (gateway mode): say so instead of failing."""

    async def prepare(self):
        await APIHandler.prepare(self)  # nothing to put in RateLimit headers

    @web.authenticated
    def get(self):
        self.json_error(503, "inactive", "eda_gateway is inactive on this server: its kernels run on a remote "
                        "gateway (GatewayClient.url), where limits and ownership apply")

    post = put = patch = delete = get


def inactive_handlers() -> list[tuple[str, type]]:
    return [(rf"{API_PREFIX}(?:/.*)?", InactiveHandler)]


__all__ = ["API_PREFIX", "EDAAPIHandler", "all_handlers", "inactive_handlers"]
