"""Rate limiting over REST: the status endpoint and the 429 answer."""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..admission import UNAVAILABLE, Decision, Usage, iso
from ..authorization import STATUS
from .base import API_PREFIX, EDAAPIHandler
from .ratelimit_headers import whole_seconds, write_admission_unavailable


def render_status(usage: Usage) -> dict:
    """The rate-limit-status answer (openapi.json ``RateLimitStatus``, without ``disk``)."""
    limits, wall, daily = usage.limits, usage.taken_at, usage.daily
    return {
        "user": usage.user,
        "limits": {
            "max_executions_per_minute": limits.max_executions_per_minute,
            "window_seconds": limits.window_seconds,
            "max_concurrent_executions": limits.max_concurrent_executions,
            "max_executions_per_day": limits.max_executions_per_day,
        },
        "executions_in_window": usage.executions_in_window,
        "remaining": usage.remaining,
        "concurrent_executions": usage.concurrent_executions,
        "retry_after_seconds": round(max(0.0, usage.retry_after_seconds), 3),
        "reset_in_seconds": round(max(0.0, usage.reset_in_seconds), 3),
        "status": usage.level,
        "daily": None if daily is None else {
            "executions": daily.executions,
            "remaining": daily.remaining,
            "reset_in_seconds": round(daily.reset_in_seconds, 3),
        },
        "active_executions": [
            {
                "kernel_id": e.kernel_id,
                "source": e.source,
                "started_at": iso(e.started_at),
                "duration_seconds": round(max(0.0, wall - e.started_at), 3),
            }
            for e in usage.active_executions
        ],
        "session": {
            "started_at": iso(usage.session_started_at),
            "duration_seconds": round(max(0.0, wall - usage.session_started_at), 3),
        },
    }


def write_rate_limited(handler: web.RequestHandler, decision: Decision) -> None:
    """Finish ``handler`` with the 429 answer of openapi.json for a refused ``decision``
    (a 503 ``admission_unavailable`` when the shared admission store is out of reach)."""
    wait = max(1, whole_seconds(decision.retry_after_seconds))
    if decision.reason == UNAVAILABLE:
        return write_admission_unavailable(handler, decision.message, decision.retry_after_seconds)
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
        # the caller's own usage was read for this request's headers (prepare); another's is read here
        usage = self.own_usage if user == self.username and self.own_usage is not None else None
        if usage is None:
            usage = self.gateway.admission.usage(user)
        status = render_status(usage)
        quotas = getattr(self.gateway, "disk_quotas", None)
        status["disk"] = quotas.status(user) if quotas is not None else None  # None: no disk quota
        self.finish(json.dumps(status))


routes = [(rf"{API_PREFIX}/rate-limit-status", RateLimitStatusHandler)]
