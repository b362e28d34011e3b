"""A real jupyter_server with eda_gateway in a subprocess, and clients for it.

Tests talk to it over real HTTP (requests) and real kernel websockets
(websocket-client), as users identified by their tokens.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import requests
import websocket

TOKENS = {"alice": "alice-token", "bob": "bob-token", "carol": "carol-token", "admin": "admin-token"}

def until_released(name: str) -> str:
    """Cell code that runs until the test calls ``GatewayServer.release(user, name)`` (a file
    in the user's workspace, the kernel's working directory); the execution time limit ends
    it if the test fails first."""
    return f"import os, time\nwhile not os.path.exists({name!r}): time.sleep(0.05)"


MULTI_USER_CONFIG = """
c.ServerApp.identity_provider_class = "eda_gateway.auth.EDAIdentityProvider"
c.EDAIdentityProvider.user_tokens = {tokens!r}
"""
# jupyter_server's own login, one token: what a personal `jupyter lab` runs with
SINGLE_USER_CONFIG = """
c.IdentityProvider.token = {token!r}
"""

BASE_CONFIG = """
c.EDAGateway.admin_users = {{"admin"}}
c.EDAGateway.workspace_root = {workspace_root!r}
c.EDAGateway.history_db = {history_db!r}
c.EDASandbox.disk_root = {disk_root!r}
c.ServerApp.root_dir = {root_dir!r}
c.ServerApp.open_browser = False
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = {port}
c.ServerApp.port_retries = 0
c.ServerApp.shutdown_no_activity_timeout = 0
c.ServerApp.allow_root = True  # CI runs as root
"""


def eda_config(tmp: Path, extra: dict | None = None):
    """An in-process server's config (pytest-jupyter's ``jp_server_config``): eda_gateway
    enabled for the users of TOKENS, admin an admin, its folders under ``tmp``; ``extra``
    ({section: {trait: value}}) on top."""
    from traitlets.config import Config

    config = Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"eda_gateway": True},
                "identity_provider_class": "eda_gateway.auth.EDAIdentityProvider",
            },
            "EDAIdentityProvider": {"user_tokens": dict(TOKENS)},
            "EDAGateway": {
                "admin_users": {"admin"},
                "workspace_root": str(tmp / "workspaces"),
                "history_db": str(tmp / "history.sqlite"),
            },
            "EDASandbox": {"disk_root": str(tmp / "disks")},
        }
    )
    if extra:
        config.merge(Config(extra))
    return config


def auth(user: str) -> dict:
    """Request headers as ``user`` (one of TOKENS), e.g. for pytest-jupyter's ``jp_fetch``."""
    return {"Authorization": f"token {TOKENS[user]}"}


# Subprocess servers are for e2e tests only (tests/conftest.py says which test runs now):
# a unit test that starts one fails, so the unit tier stays fast.
_servers_allowed = {"allowed": True, "test": None}


def allow_servers(allowed: bool, test: str | None = None) -> None:
    _servers_allowed.update(allowed=allowed, test=test)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Servers started and not stopped yet (by id): a fixture that fails after its server started
# never reaches its stop, and the server's clean-up (volumes, cgroups) would be skipped.
_running: dict[int, GatewayServer] = {}


def stop_servers_left_running() -> None:
    for srv in list(_running.values()):
        srv.stop()


@dataclass
class GatewayServer:
    """One server process; ``extra_config`` is appended to the config file."""

    tmp: Path
    extra_config: str = ""
    tokens: dict = field(default_factory=lambda: dict(TOKENS))
    command: list | None = None  # default: python -m jupyter_server
    single_token: str | None = None  # jupyter_server's default login with this token, not per-user tokens
    env: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def __post_init__(self):
        self.port = free_port()
        self.root_dir = self.tmp / "root"
        self.workspace_root = self.tmp / "workspaces"
        self.history_db = self.tmp / "history.sqlite"  # per server dir: a restart keeps it
        self.disk_root = self.tmp / "disks"  # per-user disk images, also kept by a restart
        self.runtime_dir = self.tmp / "runtime"
        self.log_path = self.tmp / "server.log"
        for d in (self.root_dir, self.workspace_root, self.runtime_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.config_path = self.tmp / "jupyter_test_config.py"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        text = BASE_CONFIG.format(
            workspace_root=str(self.workspace_root),
            history_db=str(self.history_db),
            disk_root=str(self.disk_root),
            root_dir=str(self.root_dir),
            port=self.port,
        )
        if self.single_token:
            identity = SINGLE_USER_CONFIG.format(token=self.single_token)
        else:
            identity = MULTI_USER_CONFIG.format(tokens=self.tokens)
        self.config_path.write_text(identity + text + "\n" + self.extra_config)

    def start(self, timeout: float = 120, attempts: int = 3) -> GatewayServer:
        """Start on a free port; if another process took the port meanwhile (parallel tests
        pick ports the same way), start again on another."""
        for attempt in range(attempts):
            if self._start_once(timeout):
                return self
            self.port = free_port()  # the port was taken between free_port() and our bind
        raise RuntimeError(f"server could not bind a free port in {attempts} attempts:\n{self.log()}")

    def _start_once(self, timeout: float) -> bool:
        if not _servers_allowed["allowed"]:
            raise RuntimeError(f"{_servers_allowed['test']} starts a server process but is not marked e2e: "
                               "mark it (or its module) with pytest.mark.e2e, or test in process (jp_fetch)")
        self.write_config()
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(self.runtime_dir), PYTHONUNBUFFERED="1")
        env.pop("JUPYTER_TOKEN", None)
        env.update(self.env)
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        command = self.command or [sys.executable, "-m", "jupyter_server"]
        self.proc = subprocess.Popen(
            [*command, f"--config={self.config_path}"],
            cwd=self.tmp,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # our server, not another one on a reused port: it writes this file once it listens
        listening = self.runtime_dir / f"jpserver-{self.proc.pid}.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "is not available" in self.log() or "already in use" in self.log():
                    self._log.close()
                    return False
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            try:
                if listening.exists() and requests.get(self.base_url + "/api", timeout=5).status_code == 200:
                    _running[id(self)] = self
                    return True
            except requests.RequestException:  # not listening yet, or too busy starting to answer
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20) -> int | None:
        """Stop like an admin would (SIGTERM); kill what is left after ``timeout``."""
        _running.pop(id(self), None)
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    # --- HTTP --------------------------------------------------------------

    def token_of(self, user: str) -> str:
        return self.single_token or self.tokens[user]

    def headers(self, user: str | None) -> dict:
        return {"Authorization": f"token {self.token_of(user)}"} if user else {}

    def request(self, method: str, path: str, user: str | None = "alice", **kwargs) -> requests.Response:
        headers = {**self.headers(user), **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 60)
        return requests.request(method, self.base_url + path, headers=headers, **kwargs)

    def get(self, path, user="alice", **kw):
        return self.request("GET", path, user, **kw)

    def post(self, path, user="alice", **kw):
        return self.request("POST", path, user, **kw)

    def delete(self, path, user="alice", **kw):
        return self.request("DELETE", path, user, **kw)

    def patch(self, path, user="alice", **kw):
        return self.request("PATCH", path, user, **kw)

    def put(self, path, user="alice", **kw):
        return self.request("PUT", path, user, **kw)

    def release(self, user: str, name: str) -> None:
        """End ``until_released(name)`` cells of ``user``: the file appears in their workspace."""
        (self.workspace_root / f"eda_user_{user}" / name).touch()

    def start_kernel(self, user: str = "alice", **body) -> str:
        r = self.post("/api/kernels", user, json=body)
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()["id"]

    def kernel_ws(self, kernel_id: str, user: str = "alice", protocol: str | None = None) -> KernelClient:
        return open_kernel_ws(f"ws://127.0.0.1:{self.port}", kernel_id, protocol,
                              header=[f"Authorization: token {self.token_of(user)}"])


def open_kernel_ws(base: str, kernel_id: str, protocol: str | None = None, **credentials) -> KernelClient:
    """A kernel websocket under ``base`` (``ws://host:port[/prefix]``), with ``credentials``
    (websocket-client's ``header=[...]`` or ``cookie=...``)."""
    url = f"{base}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4()}"
    if protocol:
        credentials["subprotocols"] = [protocol]
    return KernelClient(websocket.create_connection(url, timeout=60, **credentials), protocol)


# --- kernel messages over the websocket --------------------------------------


def new_message(msg_type: str, content: dict, session: str, channel: str = "shell") -> dict:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "test",
            "session": session,
            "date": datetime.now(timezone.utc).isoformat(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": channel,
        "buffers": [],
    }


class KernelClient:
    """Send kernel messages and collect replies, in either websocket protocol."""

    def __init__(self, ws, protocol: str | None):
        self.ws = ws
        self.protocol = protocol
        self.session = uuid.uuid4().hex
        self.backlog: list[dict] = []

    def close(self):
        self.ws.close()

    def send(self, msg: dict) -> None:
        if self.protocol == "v1.kernel.websocket.jupyter.org":
            from jupyter_client.session import Session
            from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

            session = Session(key=b"", session=self.session)
            channel = msg.pop("channel")
            parts = [
                session.pack(msg["header"]),
                session.pack(msg["parent_header"]),
                session.pack(msg["metadata"]),
                session.pack(msg["content"]),
            ]
            self.ws.send_binary(serialize_msg_to_ws_v1(parts, channel))
        else:
            self.ws.send(json.dumps(msg))

    def recv(self, timeout: float = 60) -> dict:
        """The next message, or WebSocketTimeoutException after ``timeout`` seconds. The
        server's pings (every 30 s) are frames too: read frame by frame, or a ping would
        restart the socket's timeout and a lost reply would hang the test, not fail it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise websocket.WebSocketTimeoutException(f"no message in {timeout:g} s")
            self.ws.settimeout(remaining)
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                frame = data.decode("utf-8") if isinstance(data, bytes) else data
                break
            if opcode == websocket.ABNF.OPCODE_BINARY:
                frame = data
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise websocket.WebSocketConnectionClosedException("the server closed the websocket")
        if isinstance(frame, bytes):
            from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1

            channel, parts = deserialize_msg_from_ws_v1(frame)
            header, parent, metadata, content = (json.loads(p) for p in parts[:4])
            return {
                "channel": channel,
                "header": header,
                "msg_type": header.get("msg_type"),
                "parent_header": parent,
                "metadata": metadata,
                "content": content,
            }
        return json.loads(frame)

    def execute(self, code: str) -> str:
        msg = new_message(
            "execute_request",
            {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False},
            self.session,
        )
        self.send(msg)
        return msg["header"]["msg_id"]

    def _parented(self, msg_id: str, timeout: float, what: Callable[[], str]):
        """The messages parented to ``msg_id``: those already read (in ``backlog``, while
        another execution was collected), then as they come (others go to ``backlog``), until
        the caller stops; TimeoutError saying ``what()`` after ``timeout`` seconds."""
        def ours(msg) -> bool:
            return msg.get("parent_header", {}).get("msg_id") == msg_id

        earlier = [msg for msg in self.backlog if ours(msg)]
        self.backlog[:] = [msg for msg in self.backlog if not ours(msg)]
        yield from earlier
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(what())
            try:
                msg = self.recv(remaining)
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(what()) from None
            if ours(msg):
                yield msg
            else:
                self.backlog.append(msg)

    def collect(self, msg_id: str, timeout: float = 60) -> list[dict]:
        """All messages parented to ``msg_id`` until its execute_reply and idle status."""
        got, reply, idle = [], False, False
        for msg in self._parented(msg_id, timeout, lambda: f"no reply to {msg_id}; got "
                                  f"{[m.get('msg_type') for m in got]}"):
            got.append(msg)
            mtype = msg.get("msg_type") or msg["header"]["msg_type"]
            if mtype == "execute_reply":
                reply = True
            if mtype == "status" and msg["content"].get("execution_state") == "idle":
                idle = True
            if reply and idle:
                return got

    def wait_for_output(self, msg_id: str, text: str, timeout: float = 60) -> None:
        """Read until ``msg_id`` prints ``text``: its code is running (e.g. before interrupting it).
        Its earlier messages are dropped; ``collect`` gets the rest."""
        for msg in self._parented(msg_id, timeout, lambda: f"{msg_id} did not print {text!r}"):
            if msg.get("msg_type") == "stream" and text in msg["content"].get("text", ""):
                return

    def run(self, code: str, timeout: float = 60) -> Execution:
        msg_id = self.execute(code)
        return Execution(msg_id, self.collect(msg_id, timeout))


@dataclass
class Execution:
    msg_id: str
    messages: list[dict]

    def of_type(self, msg_type: str) -> list[dict]:
        return [m for m in self.messages if (m.get("msg_type") or m["header"]["msg_type"]) == msg_type]

    @property
    def reply(self) -> dict:
        return self.of_type("execute_reply")[0]["content"]

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout")

    @property
    def result(self):
        results = self.of_type("execute_result")
        return results[0]["content"]["data"]["text/plain"] if results else None

    @property
    def error(self) -> dict | None:
        errors = self.of_type("error")
        return errors[0]["content"] if errors else None


def start_failure(tmp: Path, extra_config: str, timeout: float = 120) -> tuple[int, str]:
    """Start a server that must refuse to start; return its exit code and log."""
    srv = GatewayServer(tmp, extra_config=extra_config)
    try:
        srv.start(timeout=timeout)
    except RuntimeError:
        return srv.proc.returncode, srv.log()
    srv.stop()
    raise AssertionError("server started although its configuration is bad")
