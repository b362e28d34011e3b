"""Rate limiting over REST: the status endpoint, the 429 answer and the RateLimit headers.

Headers follow the IETF RateLimit header fields draft:
``RateLimit-Policy: "exec";q=10;w=60`` (quota per window) and
``RateLimit: "exec";r=7;t=41`` (remaining now, seconds until the window frees a slot).
"""

from __future__ import annotations

import json
import math

from tornado import web

from ..admission import Decision
from .base import API_PREFIX, EDAAPIHandler

POLICY_NAME = "exec"


def _whole_seconds(seconds: float) -> int:
    """Rounded up: waiting that long always works."""
    return max(0, math.ceil(seconds - 1e-9))


def set_rate_limit_headers(handler: web.RequestHandler, status: dict) -> None:
    """Set RateLimit-Policy / RateLimit from a ``AdmissionService.status()`` dict."""
    limits = status["limits"]
    handler.set_header(
        "RateLimit-Policy",
        f'"{POLICY_NAME}";q={limits["max_executions_per_minute"]};w={_whole_seconds(limits["window_seconds"])}',
    )
    handler.set_header(
        "RateLimit", f'"{POLICY_NAME}";r={status["remaining"]};t={_whole_seconds(status["reset_in_seconds"])}'
    )


def set_rate_limit_headers_for(handler: web.RequestHandler, username: str) -> None:
    """Set the RateLimit headers of ``username`` on any of our API answers."""
    set_rate_limit_headers(handler, handler.settings["eda_gateway"].admission.status(username))


def write_rate_limited(handler: web.RequestHandler, decision: Decision) -> None:
    """Finish ``handler`` with the 429 answer of CONTRACT.md for a refused ``decision``."""
    wait = max(1, _whole_seconds(decision.retry_after_seconds))
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

    @web.authenticated
    def get(self):
        user = self.get_query_argument("user", None)
        if user is None or user == self.username:
            user = self.username
        elif not self.gateway.is_admin(self.username):
            return self.json_error(403, "forbidden", "only admins may ask about another user")
        elif not user.strip():
            return self.json_error(400, "bad_request", "user must not be empty")
        status = self.gateway.admission.status(user, observe=user == self.username)
        set_rate_limit_headers(self, status)
        self.finish(json.dumps(status))


routes = [(rf"{API_PREFIX}/rate-limit-status", RateLimitStatusHandler)]
