"""The base of every eda_gateway REST handler: JSON in, JSON out.

Each handler declares the scope it needs (``auth_resource``, eda_gateway/authorization.py)
and guards its methods with jupyter_server's ``@authorized``."""

from __future__ import annotations

import json
from http import HTTPStatus

from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..authorization import EDAAuthorizer
from ..store import StoreUnavailable
from .ratelimit_headers import set_rate_limit_headers_for, write_admission_unavailable

API_PREFIX = "/advanced-eda/api"


class EDAAPIHandler(APIHandler):
    """JSON in, JSON out; every error is ``{"error": CODE, "message": TEXT}``.
    Every answer to a user tells them where their execution budget stands (RateLimit headers)."""

    own_usage = None  # the caller's Usage (eda_gateway/admission.py) shown in this answer's headers

    async def prepare(self):
        await super().prepare()
        if self.current_user is not None and "eda_gateway" in self.settings:
            self.gateway.admission.saw(self.username)  # the user themselves: their session has begun
            self.own_usage = set_rate_limit_headers_for(self, self.username)

    @property
    def gateway(self):
        return self.settings["eda_gateway"]

    @property
    def username(self) -> str:
        return self.current_user.username

    @property
    def permissions(self) -> EDAAuthorizer:
        """The server's authorizer, for what a scope alone does not say (whose data)."""
        authorizer = self.authorizer
        if not isinstance(authorizer, EDAAuthorizer):  # fail closed: nobody decides, nobody passes
            raise web.HTTPError(403, "eda_gateway's authorizer is not installed")
        return authorizer

    def json_error(self, status: int, code: str, message: str, **extra) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": code, "message": message, **extra}))

    def log_exception(self, typ, value, tb):
        if isinstance(value, StoreUnavailable):
            return  # an outage of the shared store is logged once, when it starts (app.py)
        super().log_exception(typ, value, tb)

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, StoreUnavailable):  # usage asked of a shared store out of reach
            return write_admission_unavailable(
                self, "The execution budget cannot be read now (the shared admission store is out of reach). "
                "Try again shortly.", exc.retry_after)
        message = HTTPStatus(status_code).phrase if status_code in HTTPStatus._value2member_map_ else ""
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        code = HTTPStatus(status_code).phrase.lower().replace(" ", "_") if status_code in HTTPStatus._value2member_map_ else "error"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": code, "message": message}))

    def read_json_object(self) -> dict:
        """The request body as a JSON object, or a 400 saying what is wrong."""
        body = parse_json(self.request.body, "body")
        if not isinstance(body, dict):
            raise web.HTTPError(400, "body must be a JSON object")
        return body


# Deeper than any request this API takes; Python's parser raises RecursionError (a 500)
# near 1,000 levels, and what is parsed is walked again by the code after it.
MAX_JSON_DEPTH = 64


def json_depth(value) -> int:
    """How deeply ``value`` nests lists and objects (stops counting past MAX_JSON_DEPTH)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(body: bytes | None, what: str):
    """``body`` parsed, or a 400: not JSON, or nested deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPError(400, f"{what} is not valid JSON") from None
    except RecursionError:
        value, depth = None, MAX_JSON_DEPTH + 1
    else:
        depth = json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise web.HTTPError(400, f"{what} nests lists or objects deeper than {MAX_JSON_DEPTH} levels")
    return value
