"""The RateLimit headers every answer of our API carries (IETF RateLimit header fields draft).

``RateLimit-Policy: "exec";q=10;w=60`` (quota per window) and
``RateLimit: "exec";r=7;t=41`` (remaining now, seconds until the window frees a slot).
"""

from __future__ import annotations

import json
import math

from tornado import web

from ..admission import StoreUnavailable, Usage

POLICY_NAME = "exec"


def whole_seconds(seconds: float) -> int:
    """Rounded up: waiting that long always works."""
    return max(0, math.ceil(seconds - 1e-9))


def set_rate_limit_headers(handler: web.RequestHandler, usage: Usage) -> None:
    """Set RateLimit-Policy / RateLimit from a user's ``Usage``."""
    limits = usage.limits
    handler.set_header(
        "RateLimit-Policy",
        f'"{POLICY_NAME}";q={limits.max_executions_per_minute};w={whole_seconds(limits.window_seconds)}',
    )
    handler.set_header("RateLimit", f'"{POLICY_NAME}";r={usage.remaining};t={whole_seconds(usage.reset_in_seconds)}')


def set_rate_limit_headers_for(handler: web.RequestHandler, username: str) -> Usage | None:
    """Set the RateLimit headers of ``username`` on any of our API answers; returns the usage
    shown (None, and no headers, while a shared admission store is out of reach: the answer
    itself may not need it)."""
    try:
        usage = handler.settings["eda_gateway"].admission.usage(username)
    except StoreUnavailable:
        return None
    set_rate_limit_headers(handler, usage)
    return usage


def write_admission_unavailable(handler: web.RequestHandler, message: str, retry_after: float) -> None:
    """The 503 of openapi.json: the shared admission store cannot be reached."""
    handler.set_status(503)
    handler.set_header("Retry-After", str(max(1, whole_seconds(retry_after))))
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps({"error": "admission_unavailable", "retry_after_seconds": round(retry_after, 3),
                               "message": message}))



class RetryAfterTransform(web.OutputTransform):
    """Adds ``Retry-After`` to a 429 raised before any handler code could set it
    (authentication backoff in ``prepare``: tornado's send_error clears headers set earlier)."""

    def __init__(self, request):
        super().__init__(request)
        self.request = request

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        wait = getattr(self.request, "eda_retry_after", None)
        if status_code == 429 and wait is not None and "Retry-After" not in headers:
            headers["Retry-After"] = str(max(1, whole_seconds(wait)))
        return status_code, headers, chunk
