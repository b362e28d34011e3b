"""jupyter-mcp-server (an LLM agent's MCP server) driven over stdio against eda_gateway.

What an agent sees, end to end: a real GatewayServer, the real jupyter-mcp-server from
PyPI started over stdio with alice's token (``JUPYTER_URL`` / ``JUPYTER_TOKEN``), driven
by the official ``mcp`` SDK client (ClientSession over stdio_client), as an agent host
(Claude Desktop, an IDE, ...) would. Only its ``execute_code`` tool is used: it runs code
directly in the kernel that jupyter-mcp-server starts at launch (``POST /api/kernels``
plus the kernel websocket). The notebook tools need jupyter-collaboration (RTC) on the
Jupyter server, which a plain eda_gateway server does not run, so they are not covered.

jupyter-mcp-server depends on jupyter-collaboration, jupyter_server_ydoc, fileid and
nbmodel: installed next to eda_gateway, those server extensions would enable themselves
in every server the suite starts. So it lives in its own venv,
``~/.cache/eda_gateway/jupyter-mcp-server-<version>/`` (override with ``EDA_MCP_VENV``),
created here on first use from PyPI and reused by every checkout while it holds the
pinned version. The ``mcp`` SDK client runs in
the test's own environment (the ``test`` extra). Without either: skip, or fail under
``EDA_STRICT=1``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

STRICT = os.environ.get("EDA_STRICT") == "1"
JUPYTER_MCP_SERVER = "jupyter-mcp-server==2.2.4"
# outside the checkout: every clean clone (CI's) reuses the one built on this machine
MCP_VENV = Path(os.environ.get("EDA_MCP_VENV")
                or Path.home() / ".cache" / "eda_gateway" / JUPYTER_MCP_SERVER.replace("==", "-"))
READY = MCP_VENV / ".eda-ready"  # holds the requirement it was built for

SESSION_TIMEOUT = 240  # seconds for one whole agent session (kernel start included)
CALL_TIMEOUT = 180  # seconds for one tool call

pytestmark = pytest.mark.timeout(900)


def missing(what: str):
    if STRICT:
        pytest.fail(f"{what} (EDA_STRICT=1: a missing capability fails)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def mcp_sdk():
    try:
        import mcp  # noqa: F401
        from mcp.client.stdio import stdio_client  # noqa: F401
    except ImportError as error:
        missing(f"the mcp SDK is not installed ({error}); it is in the test extra")
    return True


@pytest.fixture(scope="module")
def jupyter_mcp_server(mcp_sdk) -> Path:
    """The jupyter-mcp-server executable in its own venv; built on first use."""
    exe = MCP_VENV / "bin" / "jupyter-mcp-server"
    if exe.exists() and READY.exists() and READY.read_text().strip() == JUPYTER_MCP_SERVER:
        return exe
    if MCP_VENV.exists() and not (MCP_VENV / "pyvenv.cfg").exists() and any(MCP_VENV.iterdir()):
        pytest.fail(f"{MCP_VENV} exists and is not a venv; not replacing it")
    shutil.rmtree(MCP_VENV, ignore_errors=True)  # a stale or half-built one
    steps = build_steps()
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            missing(f"{' '.join(step)} did not finish in 600 s")
        if done.returncode != 0:
            shutil.rmtree(MCP_VENV, ignore_errors=True)
            missing(f"could not install {JUPYTER_MCP_SERVER} into {MCP_VENV}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    READY.write_text(JUPYTER_MCP_SERVER + "\n")
    return exe


def build_steps() -> list[list[str]]:
    """uv (in the test extra) builds the venv in seconds; pip's resolver took minutes here."""
    uv = Path(sys.executable).parent / "uv"
    if uv.exists():
        return [
            [str(uv), "venv", "--quiet", "--python", sys.executable, str(MCP_VENV)],
            [str(uv), "pip", "install", "--quiet", "--python", str(MCP_VENV / "bin" / "python"), JUPYTER_MCP_SERVER],
        ]
    return [
        [sys.executable, "-m", "venv", str(MCP_VENV)],
        [str(MCP_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", JUPYTER_MCP_SERVER],
    ]


@dataclass
class Answer:
    """One tool call as the agent (the LLM) sees it."""

    is_error: bool
    text: str

    def __str__(self):
        return f"[is_error={self.is_error}] {self.text!r}"


def agent_session(srv, exe: Path, codes: list[str], user: str = "alice") -> list[Answer]:
    """Start jupyter-mcp-server over stdio against ``srv`` as ``user``, run each code
    with ``execute_code``, and let the process exit (stdin closed) as an agent host does."""
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=str(exe),
        args=[],
        env={
            "JUPYTER_URL": srv.base_url,
            "JUPYTER_TOKEN": srv.tokens[user],
            "START_NEW_CODE_SANDBOX": "true",
        },
        cwd=str(srv.tmp),
    )
    errlog_path = srv.tmp / "jupyter-mcp-server.stderr"

    async def run() -> list[Answer]:
        answers = []
        with open(errlog_path, "a") as errlog, anyio.fail_after(SESSION_TIMEOUT):
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = {tool.name for tool in (await session.list_tools()).tools}
                    assert "execute_code" in tools, sorted(tools)
                    for code in codes:
                        result = await session.call_tool(
                            "execute_code", {"code": code, "timeout": 120}, read_timeout_seconds=CALL_TIMEOUT
                        )
                        is_error = bool(getattr(result, "is_error", getattr(result, "isError", False)))
                        text = "\n".join(getattr(c, "text", "") or "" for c in result.content)
                        answers.append(Answer(is_error, text))
                        print(f"agent sees: {answers[-1]}")
        return answers

    # In a thread of its own: earlier tests of the suite (Playwright's sync API) can leave an
    # event loop running in this one, and anyio.run refuses to start inside a running loop.
    outcome: dict = {}

    def in_thread() -> None:
        try:
            outcome["answers"] = anyio.run(run)
        except BaseException as e:  # re-raised in the test's thread
            outcome["error"] = e

    thread = threading.Thread(target=in_thread, name="agent-session")
    thread.start()
    thread.join(SESSION_TIMEOUT + 60)
    if thread.is_alive():
        raise TimeoutError(f"the agent session did not end in {SESSION_TIMEOUT + 60} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["answers"]


def stderr_tail(srv, n: int = 3000) -> str:
    try:
        return (srv.tmp / "jupyter-mcp-server.stderr").read_text(errors="replace")[-n:]
    except FileNotFoundError:
        return ""


# One server for every check: per-user limits keep them apart (bob: a spent budget,
# carol: a small memory limit, alice: a quota of 2 kernels and a roomy budget).
# Isolation off: kernels start in ~0.5 s; confinement is tested elsewhere.
CONFIG = """
c.EDAIsolation.isolation = "none"
c.EDAGateway.user_limits = {
    "alice": {"max_executions_per_minute": 100, "max_kernels_per_user": 2},
    "bob": {"max_executions_per_minute": 1, "window_seconds": 3600},
    "carol": {"max_memory_mb": 128, "max_executions_per_minute": 100},
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from harness import GatewayServer

    server = GatewayServer(tmp_path_factory.mktemp("mcp"), extra_config=CONFIG).start()
    yield server
    server.stop()


def test_refused_execution_reaches_the_agent_as_rate_limit_exceeded(srv, jupyter_mcp_server):
    first, second = agent_session(srv, jupyter_mcp_server, ["print('first ran')", "print('second ran')"], "bob")
    assert "first ran" in first.text, f"{first}\n{stderr_tail(srv)}"
    assert "second ran" not in second.text, second
    assert "RateLimitExceeded" in second.text, f"{second}\n{stderr_tail(srv)}"
    wait = re.search(r"[Tt]ry again in (\d+) ?s", second.text)
    assert wait, f"no retry time visible to the agent: {second}"
    assert 0 < int(wait.group(1)) <= 3600, second


# ~400 MiB, every page written
MEMORY_BOMB = "block = b'x' * (400 << 20)\nprint('survived', len(block))"


def test_memory_kill_reaches_the_agent_as_memory_limit_exceeded(srv, jupyter_mcp_server):
    bomb, after = agent_session(srv, jupyter_mcp_server, [MEMORY_BOMB, "print('back', 1)"], "carol")
    assert "survived" not in bomb.text, bomb
    assert "MemoryLimitExceeded" in bomb.text and "128 MiB" in bomb.text, f"{bomb}\n{stderr_tail(srv)}"
    # the kernel is restarted and the same agent session goes on
    assert "back 1" in after.text, f"{after}\n{stderr_tail(srv)}"


def test_agent_sessions_in_a_row_run_code_and_never_hit_the_kernel_quota(srv, jupyter_mcp_server):
    """jupyter-mcp-server leaves its kernel behind at every exit; with the default quota of 4
    the 5th session used to meet max_kernels_per_user. Idle kernels are reclaimed instead
    (alice's quota is 2 here: twice the quota in sessions, at ~8 s a session)."""
    for i in range(4):
        (answer,) = agent_session(srv, jupyter_mcp_server, [f"print('session', {i})"])
        assert not answer.is_error and f"session {i}" in answer.text, (
            f"agent session {i + 1} of 4: {answer}\n"
            f"alice's kernels: {srv.get('/api/kernels').text}\n{stderr_tail(srv)}"
        )
    assert len(srv.get("/api/kernels").json()) <= 2
