"""``/advanced-eda/mcp``: the MCP endpoint (streamable HTTP), on the Jupyter server itself.

The official SDK's ``StreamableHTTPSessionManager`` speaks the transport as an ASGI app;
this handler hands it each request (authenticated as every REST endpoint: a user's
token, the Hub's, a login cookie) and writes its answer back, streaming server-sent
events as they come (progress of a long run). The manager is stateless: every request
stands alone, so no MCP session outlives the user's authentication. The tools
(eda_gateway/agents.py) read who asks from ``agents.CALLER``.
"""

from __future__ import annotations

import asyncio
import contextlib

from jupyter_server.auth.decorator import authorized
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from tornado import web

from ..agents import CALLER, AgentTools
from ..authorization import EXECUTE
from .base import EDAAPIHandler

MCP_PATH = "/advanced-eda/mcp"
# Not passed on to the SDK: authentication is done here, and the token must not travel further.
_DROPPED_HEADERS = {"authorization", "cookie"}


class MCPService:
    """The SDK's session manager for ``tools``, running while the server runs."""

    def __init__(self, tools: AgentTools, max_body_bytes: int) -> None:
        self.tools = tools
        self.manager = StreamableHTTPSessionManager(
            app=tools.server._lowlevel_server,  # the MCPServer's protocol server: tools registered above
            stateless=True,
            # jupyter_server checks Host and Origin itself (allow_origin, allow_remote_access)
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=max_body_bytes,
        )
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()

    async def serve(self) -> None:
        """The manager's lifetime (a background task of the server)."""
        async with self.manager.run():
            self.ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


class MCPHandler(EDAAPIHandler):
    """POST (JSON-RPC in, JSON or an event stream out), GET and DELETE of the transport."""

    auth_resource = EXECUTE

    @web.authenticated
    @authorized
    async def post(self):
        await self._bridge()

    @web.authenticated
    @authorized
    async def get(self):
        await self._bridge()

    @web.authenticated
    @authorized
    async def delete(self):
        await self._bridge()

    async def _bridge(self) -> None:
        service: MCPService | None = self.gateway.mcp
        if service is None or not service.ready.is_set():
            self.set_header("Retry-After", "1")
            return self.json_error(503, "mcp_unavailable", "the MCP endpoint is starting; try again shortly")
        request = self.request
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.protocol,
            "path": "/mcp",
            "raw_path": b"/mcp",
            "root_path": "",
            "query_string": request.query.encode("latin-1"),
            "headers": [(name.lower().encode("latin-1"), value.encode("latin-1"))
                        for name, value in request.headers.get_all() if name.lower() not in _DROPPED_HEADERS],
            "client": (request.remote_ip or "", 0),
            "server": (request.host_name, 0),
        }
        body_sent = False
        finished = asyncio.Event()

        async def receive():
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": request.body or b"", "more_body": False}
            await finished.wait()  # nothing more comes from this client until the answer is done
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                self.set_status(message["status"])
                self.clear_header("Content-Type")
                for name, value in message.get("headers", []):
                    self.add_header(name.decode("latin-1"), value.decode("latin-1"))
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    self.write(message["body"])
                if message.get("more_body"):
                    with contextlib.suppress(Exception):  # the client left: the run goes on and ends
                        await self.flush()

        service.tools.on_request(self.username)
        token = CALLER.set(self.username)
        try:
            await service.manager.handle_request(scope, receive, send)
        finally:
            CALLER.reset(token)
            finished.set()
        if not self._finished:
            self.finish()


routes = [(MCP_PATH, MCPHandler)]
