"""REST execution API: run code on the caller's dataset kernel; list datasets; the OpenAPI document."""

from __future__ import annotations

import json
from importlib import resources

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..authorization import EXECUTE, STATUS
from ..datasets import DatasetError
from ..execution import KernelGone, KernelUnavailable, RunRefused
from .base import API_PREFIX, EDAAPIHandler
from .ratelimit import write_rate_limited
from .ratelimit_headers import set_rate_limit_headers_for

EXECUTE_FIELDS = frozenset({"code"})
DRAIN_BODY_BYTES = 1 << 30


@web.stream_request_body
class ExecuteCodeHandler(EDAAPIHandler):
    """POST {"code": "..."} -> the run's status, outputs and error (openapi.json)."""

    auth_resource = EXECUTE

    def initialize(self):
        self._body = bytearray()
        self._body_size = 0

    async def prepare(self):
        # Past the server's body cap tornado would close with a bare 400; this body is
        # read and dropped beyond max_code_bytes, so reading on costs no memory.
        self.request.connection.set_max_body_size(DRAIN_BODY_BYTES)
        await super().prepare()

    @property
    def max_code_bytes(self) -> int:
        return self.gateway.max_code_bytes

    def data_received(self, chunk: bytes) -> None:
        # Keep at most the limit (+1 to know it was passed); read and drop the rest,
        # so that the client gets its 413 instead of a reset connection.
        self._body_size += len(chunk)
        room = self.max_code_bytes + 1 - len(self._body)
        if room > 0:
            self._body.extend(chunk[:room])

    @web.authenticated
    @authorized
    async def post(self, source_id: str):
        if self._body_size > self.max_code_bytes:
            return self.json_error(
                413,
                "payload_too_large",
                f"the body is {self._body_size} bytes; at most {self.max_code_bytes} are accepted "
                "(EDAGateway.max_code_bytes)",
                max_code_bytes=self.max_code_bytes,
            )
        self.request.body = bytes(self._body)
        body = self.read_json_object()
        unknown = set(body) - EXECUTE_FIELDS
        if unknown:
            raise web.HTTPError(400, "unknown fields: %s (only 'code' is accepted)", ", ".join(sorted(unknown)))
        code = body.get("code")
        if not isinstance(code, str):
            raise web.HTTPError(400, "'code' must be a string")
        service = self.gateway.execution
        try:
            result = await service.execute(self.username, source_id, code)
        except DatasetError as e:
            return self.json_error(e.status, e.code, e.message)
        except RunRefused as refused:
            return self.write_refusal(refused.decision)
        except KernelGone:
            return self.json_error(
                409, "kernel_gone", "the dataset kernel was shut down while this request waited; send it again"
            )
        except KernelUnavailable as e:
            self.set_header("Retry-After", "5")
            return self.json_error(503, "kernel_unavailable", str(e))
        self.add_rate_limit_headers()
        self.finish(json.dumps(result.to_json()))

    def write_refusal(self, decision) -> None:
        self.add_rate_limit_headers()
        write_rate_limited(self, decision)

    def add_rate_limit_headers(self) -> None:
        set_rate_limit_headers_for(self, self.username)


class DatasetsHandler(EDAAPIHandler):
    """The datasets the caller may use."""

    auth_resource = EXECUTE

    @web.authenticated
    @authorized
    def get(self):
        datasets = self.gateway.execution.catalogue.for_user(self.username)
        if datasets:
            self.gateway.execution.warm_up(self.username)  # a run on one of them is likely next
        self.finish(json.dumps({"datasets": [d.summary() for d in datasets]}))


class OpenAPIHandler(EDAAPIHandler):
    """The OpenAPI 3 document of every eda_gateway REST endpoint."""

    auth_resource = STATUS

    @web.authenticated
    @authorized
    def get(self):
        self.finish(openapi_document())


class UnknownEndpointHandler(EDAAPIHandler):
    """Anything else under the API prefix: a JSON 404 (jupyter_server would answer HTML)."""

    async def prepare(self):
        await super().prepare()
        raise web.HTTPError(404, "no such eda_gateway endpoint: %s (see %s/openapi.json)", self.request.path, API_PREFIX)


def openapi_document() -> str:
    return resources.files("eda_gateway").joinpath("openapi.json").read_text(encoding="utf-8")


# Last of all routes: it matches every path under the prefix.
CATCH_ALL = (rf"{API_PREFIX}(?:/.*)?", UnknownEndpointHandler)


def handlers() -> list[tuple[str, type]]:
    return [
        (rf"{API_PREFIX}/execute-custom-code/(?P<source_id>[^/]+)", ExecuteCodeHandler),
        (rf"{API_PREFIX}/datasets", DatasetsHandler),
        (rf"{API_PREFIX}/openapi\.json", OpenAPIHandler),
    ]
