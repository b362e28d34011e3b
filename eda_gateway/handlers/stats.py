"""GET /advanced-eda/api/system-stats: answered from the telemetry snapshot (eda_gateway/system_stats.py)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..authorization import ADMIN, STATUS
from .base import API_PREFIX, EDAAPIHandler


class SystemStatsHandler(EDAAPIHandler):
    auth_resource = STATUS

    @web.authenticated
    @authorized
    def get(self):
        user = self.username
        self.finish(self.gateway.system_stats.report(user, everyone=self.permissions.has_scope(user, ADMIN)))


routes = [(rf"{API_PREFIX}/system-stats", SystemStatsHandler)]
