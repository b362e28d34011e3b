"""GET /advanced-eda/api/system-stats: answered from the telemetry snapshot, never by walking processes."""

from __future__ import annotations

import time

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..authorization import ADMIN, STATUS
from .base import API_PREFIX, EDAAPIHandler


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class SystemStatsHandler(EDAAPIHandler):
    auth_resource = STATUS

    @web.authenticated
    @authorized
    def get(self):
        gateway = self.gateway
        snap = gateway.telemetry.snapshot
        user = self.username
        everyone = self.permissions.has_scope(user, ADMIN)
        self.finish(
            {
                "cpu": {"percent": snap.cpu_percent, "count": snap.cpu_count},
                "memory": {
                    "total": snap.memory_total,
                    "used": snap.memory_used,
                    "available": snap.memory_available,
                    "percent": snap.memory_percent,
                },
                "active_users": snap.active_users,
                "active_kernels": len(snap.kernels),
                "active_executions": snap.active_executions,
                "enforcement": gateway.sandbox.enforcement,  # chosen at start-up: known before the first sample
                "isolation": gateway.isolation.active,  # layers between kernels (eda_gateway/isolation)
                "isolation_warning": gateway.isolation.warning,  # set when kernels run less confined
                "sampled_at": _iso(snap.sampled_at),
                "kernels": [k.to_json() for k in snap.kernels if everyone or k.user == user],
            }
        )


routes = [(rf"{API_PREFIX}/system-stats", SystemStatsHandler)]
