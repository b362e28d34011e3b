"""Rate limiting over REST: the status endpoint and the 429 answer."""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..admission import Decision
from ..authorization import STATUS
from .base import API_PREFIX, EDAAPIHandler
from .ratelimit_headers import set_rate_limit_headers, whole_seconds

def write_rate_limited(handler: web.RequestHandler, decision: Decision) -> None:
    """Finish ``handler`` with the 429 answer of openapi.json for a refused ``decision``."""
    wait = max(1, whole_seconds(decision.retry_after_seconds))
    handler.set_status(429)
    handler.set_header("Retry-After", str(wait))
    handler.set_header("Content-Type", "application/json")
    handler.finish(
        json.dumps(
            {
                "error": "rate_limited",
                "reason": decision.reason,
                "retry_after_seconds": round(decision.retry_after_seconds, 3),
                "message": decision.message or f"Rate limit exceeded ({decision.reason}); retry in {wait} s.",
            }
        )
    )


class RateLimitStatusHandler(EDAAPIHandler):
    """GET the caller's budget (an admin may ask about anyone with ?user=NAME)."""

    auth_resource = STATUS

    @web.authenticated
    @authorized
    def get(self):
        user = self.get_query_argument("user", None)
        if user is None or user == self.username:
            user = self.username
        elif not self.permissions.may_read_user(self.username, user):
            return self.json_error(403, "forbidden", "only admins may ask about another user")
        elif not user.strip():
            return self.json_error(400, "bad_request", "user must not be empty")
        status = self.gateway.admission.status(user, observe=user == self.username)
        quotas = getattr(self.gateway, "disk_quotas", None)
        status["disk"] = quotas.status(user) if quotas is not None else None  # None: no disk quota
        set_rate_limit_headers(self, status)
        self.finish(json.dumps(status))


routes = [(rf"{API_PREFIX}/rate-limit-status", RateLimitStatusHandler)]
