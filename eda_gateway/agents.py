"""LLM agents over the Model Context Protocol: the tools (docs/agents.md).

An ``MCPServer`` of the official ``mcp`` SDK, served by the Jupyter server itself at
``/advanced-eda/mcp`` (eda_gateway/handlers/mcp.py bridges tornado to the SDK's
streamable HTTP transport). Who calls is the request's user, authenticated as on every
REST endpoint, and reaches the tools through ``CALLER``. Every run goes through the
execution service: the same budget, sandbox, verdicts and history as notebooks and the
REST API.

Tools: ``list_datasets``, ``run_code(dataset, code)``, ``list_kernels``,
``run_in_kernel(kernel_id, code)``, ``budget``. A run's outputs become MCP content (text,
tracebacks, PNG images); its facts (status, verdict, kernel, duration) are the structured
content. A refusal is a tool error whose structured content names the limit and carries
``retry_after_seconds`` as a number.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from contextvars import ContextVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ImageContent, TextContent
from tornado.web import HTTPError

from .admission import UNAVAILABLE
from .datasets import DatasetCatalogue, DatasetError
from .execution import ExecutionService, KernelGone, KernelUnavailable, RunRefused, RunResult
from .verdicts import ADMISSION_UNAVAILABLE, RATE_LIMIT_EXCEEDED

# The user of the MCP request being handled (set by the HTTP bridge, read by every tool).
CALLER: ContextVar[str] = ContextVar("eda_gateway_mcp_caller")

PROGRESS_SECONDS = 2.0  # a long run reports progress this often
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

INSTRUCTIONS = (
    "Run Python for data analysis on eda_gateway. run_code runs on a dataset's kernel (list_datasets); "
    "run_in_kernel runs in one of your notebook kernels (list_kernels), sharing its variables. Every run "
    "counts against your execution budget (budget): a refused run is a tool error with retry_after_seconds; "
    "wait that long before trying again."
)


class AgentTools:
    """The MCP tools of one server, over its services (collaborators passed in)."""

    def __init__(
        self,
        execution: ExecutionService,
        catalogue: DatasetCatalogue,
        kernels_of: Callable[[str], list[dict]],
        may_use_kernel: Callable[[str, str], bool],
        status_of: Callable[[str], dict],
    ) -> None:
        self.execution = execution
        self.catalogue = catalogue
        self.kernels_of = kernels_of  # the caller's kernels, as list_kernels shows them
        self.may_use_kernel = may_use_kernel
        self.status_of = status_of  # rate-limit-status of a user
        self.server = self._build()

    def on_request(self, user: str) -> None:
        """An agent of ``user`` is talking to us (any MCP request, ``initialize`` first): a
        run on a dataset is likely soon, so have a warm kernel ready by then."""
        if self.catalogue.for_user(user):
            self.execution.warm_up(user)

    def _build(self) -> MCPServer:
        server = MCPServer("eda_gateway", instructions=INSTRUCTIONS)
        # Every tool is a coroutine: the SDK runs plain functions in worker threads, and the
        # services here belong to the server's event loop.

        @server.tool(description="The datasets you may run code on (run_code's `dataset`).")
        async def list_datasets() -> CallToolResult:
            user = _caller()  # (on_request has warmed a kernel up for them)
            found = [{"id": d.id, "description": d.description} for d in self.catalogue.for_user(user)]
            return _facts({"datasets": found})

        @server.tool(description="Run Python `code` on your kernel for `dataset` (the data is loaded there). "
                                 "Returns its output: text, tables, tracebacks, PNG images.")
        async def run_code(dataset: str, code: str, ctx: Context) -> CallToolResult:
            user = _caller()
            return await self._run(ctx, lambda: self.execution.execute(user, dataset, code))

        @server.tool(description="Your running kernels (notebooks included): run_in_kernel's `kernel_id`.")
        async def list_kernels() -> CallToolResult:
            return _facts({"kernels": self.kernels_of(_caller())})

        @server.tool(description="Run Python `code` in one of your kernels (list_kernels), e.g. a notebook's: "
                                 "it sees and changes that notebook's variables, and its output shows there too.")
        async def run_in_kernel(kernel_id: str, code: str, ctx: Context) -> CallToolResult:
            user = _caller()
            if not self.may_use_kernel(user, kernel_id):
                return _failure("forbidden", f"kernel {kernel_id!r} is not yours")
            return await self._run(ctx, lambda: self.execution.run_in_kernel(user, kernel_id, code))

        @server.tool(description="Your execution budget now: executions left in the window, running "
                                 "executions, and seconds until you may run again when limited.")
        async def budget() -> CallToolResult:
            return _facts(self.status_of(_caller()))

        return server

    async def _run(self, ctx: Context, start) -> CallToolResult:
        """A run, with progress every PROGRESS_SECONDS while it lasts; every failure a tool error."""
        task = asyncio.ensure_future(start())
        waited = 0.0
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=PROGRESS_SECONDS)
                if done:
                    break
                waited += PROGRESS_SECONDS
                try:
                    await ctx.report_progress(waited, None, f"running for {waited:.0f} s")
                except Exception:  # a client that asked for no progress, or is gone: the run goes on
                    pass
            return run_result(task.result())
        except RunRefused as refused:
            decision = refused.decision
            name = ADMISSION_UNAVAILABLE if decision.reason == UNAVAILABLE else RATE_LIMIT_EXCEEDED
            return _failure(name, decision.message, reason=decision.reason,
                            retry_after_seconds=round(decision.retry_after_seconds, 3))
        except DatasetError as e:
            return _failure(e.code, str(e))
        except KernelGone:
            return _failure("kernel_gone", "no such kernel (or it was shut down): list_kernels shows yours")
        except KernelUnavailable as e:
            return _failure("kernel_unavailable", str(e), retry_after_seconds=5)
        except HTTPError as e:  # the kernel manager's refusals (kernel quota, disk)
            return _failure("refused", e.log_message % e.args if e.args else (e.log_message or str(e)))
        finally:
            if not task.done():
                task.cancel()


def _caller() -> str:
    user = CALLER.get(None)
    if not user:  # the bridge sets it for every request: without it nobody is asking
        raise PermissionError("no authenticated user")
    return user


def _facts(facts: dict) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(facts))], structured_content=facts)


def _failure(error: str, message: str, **facts) -> CallToolResult:
    body = {"error": error, "message": message, **facts}
    text = message + (f" (retry_after_seconds: {facts['retry_after_seconds']})" if "retry_after_seconds" in facts
                      else "")
    return CallToolResult(content=[TextContent(type="text", text=f"{error}: {text}")], structured_content=body,
                          is_error=True)


def run_result(result: RunResult) -> CallToolResult:
    """A run's outputs as MCP content; an error (the code's own or a verdict) is a tool error."""
    content: list = []
    for output in result.outputs:
        kind = output.get("output_type")
        if kind == "stream":
            content.append(TextContent(type="text", text=output.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            if "image/png" in data:
                content.append(ImageContent(type="image", data="".join(str(data["image/png"]).split()),
                                            mime_type="image/png"))
            elif "text/plain" in data:
                content.append(TextContent(type="text", text=str(data["text/plain"])))
            elif "text/html" in data:  # nothing plainer: the HTML, which models read too
                content.append(TextContent(type="text", text=str(data["text/html"])))
        elif kind == "error":
            traceback = "\n".join(_ANSI.sub("", line) for line in output.get("traceback", []))
            content.append(TextContent(type="text", text=traceback or f"{output.get('ename')}: {output.get('evalue')}"))
    if result.truncated:
        content.append(TextContent(type="text", text="[output truncated: EDAGateway.max_output_bytes]"))
    facts = {key: value for key, value in result.to_json().items() if key != "outputs"}
    if not content:
        content.append(TextContent(type="text", text="(no output)"))
    return CallToolResult(content=content, structured_content=facts, is_error=result.status != "ok")
