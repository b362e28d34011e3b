"""The built-in MCP endpoint (``/advanced-eda/mcp``) driven by the ``mcp`` SDK's own client
over streamable HTTP against a real server, as an agent host would."""

from __future__ import annotations

import base64

import anyio
import httpx2
import pytest

from harness import GatewayServer
from test_execute_api import datasets_config

pytestmark = pytest.mark.e2e

PER_MINUTE = 8
CONFIG = f"""
c.EDARateLimiter.max_executions_per_minute = {PER_MINUTE}
c.EDASandbox.max_memory_mb = 256
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcp")
    srv = GatewayServer(tmp, extra_config=datasets_config(tmp) + CONFIG).start()
    yield srv
    srv.stop()


def in_session(server, user: str | None, work, timeout: float = 120):
    """Open an MCP session as ``user`` (the SDK's client over streamable HTTP) and await
    ``work(session)`` in it."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def session():
        headers = {"Authorization": f"token {server.tokens[user]}"} if user else {}
        async with create_mcp_http_client(headers=headers) as client, \
                streamable_http_client(f"{server.base_url}/advanced-eda/mcp", http_client=client) as streams:
            async with ClientSession(streams[0], streams[1]) as mcp:
                await mcp.initialize()
                return await work(mcp)

    async def bounded():
        with anyio.fail_after(timeout):
            return await session()

    return anyio.run(bounded)


def call(server, user: str | None, *steps, timeout: float = 120):
    """The tool list, then the results of ``steps`` (``(tool, arguments)``), in one session."""

    async def work(mcp):
        results = [await mcp.list_tools()]
        for name, arguments in steps:
            results.append(await mcp.call_tool(name, arguments))
        return results

    return in_session(server, user, work, timeout)


def texts(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def test_alice_lists_datasets_and_gets_a_matplotlib_png_as_image_content(server):
    listing, datasets, plot = call(
        server, "alice",
        ("list_datasets", {}),
        ("run_code", {"dataset": "sales", "code": (
            "import matplotlib.pyplot as plt\n"  # ipykernel's inline backend: a PNG display_data
            "plt.plot([1, 2, 3]); plt.show()\nprint('plotted')")}),
    )
    assert {t.name for t in listing.tools} == {"list_datasets", "run_code", "list_kernels", "run_in_kernel", "budget"}
    ids = {d["id"] for d in datasets.structured_content["datasets"]}
    assert "sales" in ids and "secret" not in ids  # carol's is not hers
    assert not plot.is_error, texts(plot)
    images = [c for c in plot.content if c.type == "image"]
    assert images and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG")
    assert "plotted" in texts(plot) and plot.structured_content["status"] == "ok"
    # listing warmed a kernel up, and the first run on sales took it (EDAGateway.warm_start)
    assert f"warm kernel {plot.structured_content['kernel_id']} of alice takes dataset sales" in server.log()


def test_an_agent_works_in_the_analysts_notebook_kernel(server):
    kernel = server.start_kernel("alice")
    notebook = server.kernel_ws(kernel, "alice")
    try:
        assert notebook.run("answer = 6 * 7").reply["status"] == "ok"
        kernels, ran = call(server, "alice", ("list_kernels", {}),
                            ("run_in_kernel", {"kernel_id": kernel, "code": "answer + 1"}))[1:]
        assert kernel in {k["kernel_id"] for k in kernels.structured_content["kernels"]}
        assert not ran.is_error and texts(ran) == "43"
        assert ran.structured_content["kernel_id"] == kernel
    finally:
        notebook.close()


def test_bob_cannot_touch_alices_kernel(server):
    kernel = server.start_kernel("alice")
    kernels, ran = call(server, "bob", ("list_kernels", {}),
                        ("run_in_kernel", {"kernel_id": kernel, "code": "print('bob was here')"}))[1:]
    assert kernel not in {k["kernel_id"] for k in kernels.structured_content["kernels"]}
    assert ran.is_error and ran.structured_content["error"] == "forbidden"


def test_past_the_budget_the_tool_error_carries_the_retry_seconds(server):
    steps = [("run_code", {"dataset": "sales", "code": "1"})] * (PER_MINUTE + 1)
    *runs, status = call(server, "bob", *steps, ("budget", {}))[1:]
    refused = [r for r in runs if r.is_error]
    assert refused and refused[-1].structured_content["error"] == "RateLimitExceeded"
    assert refused[-1].structured_content["reason"] == "per_minute"
    wait = refused[-1].structured_content["retry_after_seconds"]
    assert isinstance(wait, float | int) and wait > 0 and "retry_after_seconds" in texts(refused[-1])
    assert status.structured_content["remaining"] == 0 and status.structured_content["user"] == "bob"


def test_a_memory_bomb_returns_memory_limit_exceeded(server):
    bomb = call(server, "admin", ("run_code", {"dataset": "sales",
                                               "code": "x = bytearray(600 * 1024 * 1024); x[::4096] = b'x' * len(x[::4096])"}))[1]
    assert bomb.is_error and bomb.structured_content["error"]["ename"] == "MemoryLimitExceeded", texts(bomb)
    assert "MemoryLimitExceeded" in texts(bomb)


def test_no_token_is_refused(server):
    r = httpx2.post(f"{server.base_url}/advanced-eda/mcp", timeout=30,
                    json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
                    headers={"Accept": "application/json, text/event-stream"})
    assert r.status_code == 403, r.text
    with pytest.raises(Exception):  # noqa: B017 (the SDK client surfaces the 403 as its own error)
        call(server, None, timeout=30)


def test_a_long_run_reports_progress(server):
    progress = []

    async def work(mcp):
        async def on_progress(done, total, message):
            progress.append((done, message))

        return await mcp.call_tool("run_code", {"dataset": "sales", "code": "import time; time.sleep(5); print('done')"},
                                   progress_callback=on_progress)

    result = in_session(server, "admin", work)
    assert not result.is_error and "done" in texts(result)
    assert progress and progress[0][1].startswith("running for")


def test_the_example_agent_runs_against_the_server(server):
    """examples/mcp/agent.py, as docs/agents.md tells agent builders to start."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "mcp" / "agent.py"
    done = subprocess.run([sys.executable, str(example), "--url", server.base_url, "--token", server.tokens["carol"],
                           "--dataset", "secret", "--code", "int(df.x.sum()) + 41"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tools: list_datasets, run_code, list_kernels, run_in_kernel, budget" in done.stdout
    assert "datasets: secret" in done.stdout and "\n42\n" in done.stdout, done.stdout


def test_the_example_client_config_names_this_endpoint():
    import json
    from pathlib import Path

    config = json.loads((Path(__file__).resolve().parents[1] / "examples" / "mcp" / "mcp.json").read_text())
    entry = config["mcpServers"]["eda_gateway"]
    assert entry["url"].endswith("/advanced-eda/mcp") and entry["headers"]["Authorization"].startswith("token ")
