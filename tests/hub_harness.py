"""A real JupyterHub (and its configurable-http-proxy) running one of examples/jupyterhub/,
and people who log in at it.

The Hub runs the very example configs a Hub admin would start from, on free loopback
ports and in a state folder of the test's (examples/jupyterhub/common.py reads them
from the environment). ``HubUser`` logs in with a real HTTP login and follows the
Hub's OAuth redirects with its cookies, as a browser does.
"""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

import harness
from harness import KernelClient, free_port, open_kernel_ws

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "jupyterhub"
PASSWORD = "hub-test-password"  # the examples' DummyAuthenticator password, set by EDA_HUB_PASSWORD
PROXY = REPO / ".venv" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"


class _Exited(Exception):
    """The Hub process ended while starting."""


class Hub:
    """``jupyterhub -f examples/jupyterhub/<example>/jupyterhub_config.py`` in ``tmp``."""

    def __init__(self, tmp: Path, example: str, env: dict | None = None):
        self.tmp = tmp
        self.state = tmp / "hub-state"
        self.config = EXAMPLES / example / "jupyterhub_config.py"
        self._extra_env = env or {}
        self._pick_ports()
        self.log_path = tmp / "hub.log"
        self.proc: subprocess.Popen | None = None

    def _pick_ports(self) -> None:
        self.port = free_port()
        self.env = {
            "EDA_HUB_STATE": str(self.state),
            "EDA_HUB_PORT": str(self.port),
            "EDA_HUB_API_PORT": str(free_port()),
            "EDA_HUB_PROXY_API_PORT": str(free_port()),
            "EDA_SERVICE_PORT": str(free_port()),
            "EDA_HUB_PASSWORD": PASSWORD,
            **self._extra_env,
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/hub/api/", timeout: float = 90, attempts: int = 3) -> Hub:
        """Start, and wait until ``ready_path`` (through the proxy) answers 200; if the Hub
        exits at once (a port taken meanwhile by another test's process), on other ports."""
        for attempt in range(attempts):
            try:
                return self._start_once(ready_path, timeout)
            except _Exited:
                if attempt == attempts - 1:
                    raise RuntimeError(f"jupyterhub exited {attempts} times:\n{self.log()}") from None
                self._pick_ports()
        raise AssertionError("unreachable")

    def _start_once(self, ready_path: str, timeout: float) -> Hub:
        if not harness._servers_allowed["allowed"]:
            raise RuntimeError(f"{harness._servers_allowed['test']} starts a Hub but is not marked e2e")
        if not PROXY.exists():
            raise RuntimeError(f"{PROXY} is missing: scripts/setup.sh installs configurable-http-proxy")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        env.pop("JUPYTER_TOKEN", None)
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config)],
            cwd=self.tmp, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                raise _Exited()
            try:
                if requests.get(self.url + ready_path, timeout=5).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or too busy starting to answer
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"jupyterhub did not answer {ready_path} in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: the Hub stops its services, spawned servers and proxy; what is left is killed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its children share its process group
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._log.close()

    def interesting_log(self, lines: int = 80) -> str:
        """The log's last ``lines`` without the polls of a user's model (``spawn``'s own)."""
        kept = [line for line in self.log().splitlines() if not _POLL.search(line)]
        return "\n".join(kept[-lines:])

    def spawn(self, name: str, token: str, timeout: float = 180) -> None:
        """Ask the Hub to start ``name``'s server (as its home page does) and wait until the
        Hub calls it ready. A spawn the Hub gave up on (its start_timeout) fails at once."""
        r = requests.post(f"{self.url}/hub/api/users/{name}/server", headers=with_token(token), timeout=60)
        assert r.status_code in (201, 202), (r.status_code, r.text)
        deadline = time.monotonic() + timeout
        gone = 0  # polls in a row that saw neither a pending spawn nor a ready server
        while time.monotonic() < deadline:
            model = requests.get(f"{self.url}/hub/api/users/{name}", headers=with_token(token), timeout=30).json()
            server = (model.get("servers") or {}).get("", {})
            if server.get("ready"):
                return
            gone = 0 if server.get("pending") else gone + 1
            if gone >= 3:
                raise AssertionError(f"the Hub gave up on {name}'s server:\n{self.interesting_log()}")
            time.sleep(1)
        raise AssertionError(f"{name}'s server was not ready in {timeout} s:\n{self.interesting_log()}")

    def login(self, name: str, password: str = PASSWORD) -> HubUser:
        return HubUser(self, name).login(password)


_POLL = re.compile(r" 200 GET /hub/api/users/[^/ ]+ ")


class HubUser:
    """One person's browser: a cookie jar that logged in at the Hub."""

    def __init__(self, hub: Hub, name: str):
        self.hub = hub
        self.name = name
        self.session = requests.Session()

    def login(self, password: str) -> HubUser:
        self.session.get(self.hub.url + "/hub/login", timeout=30)
        r = self.session.post(self.hub.url + "/hub/login", timeout=30,
                              data={"username": self.name, "password": password, "_xsrf": self._xsrf("/hub/")})
        assert r.status_code == 200 and "/hub/login" not in r.url, (r.status_code, r.url)
        return self

    def _xsrf(self, prefix: str) -> str:
        """The XSRF cookie of the Hub (``/hub/``) or of a server under ``prefix``."""
        where = prefix.rstrip("/") + "/"
        found = [(len(c.path or "/"), c.value) for c in self.session.cookies
                 if c.name == "_xsrf" and where.startswith((c.path or "/").rstrip("/") + "/")]
        return max(found)[1] if found else ""  # the most specific path's

    def open(self, path: str) -> requests.Response:
        """A page, as a browser opens it: redirects (the Hub's OAuth) followed, and the Hub's
        "Authorize access" page (someone else's server shared with this user) confirmed."""
        r = self.session.get(self.hub.url + path, timeout=60)
        if r.status_code == 200 and "/hub/api/oauth2/authorize" in r.url:
            fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', r.text)
            r = self.session.post(r.url, data=[(k, html.unescape(v)) for k, v in fields], timeout=60)
        return r

    def api(self, method: str, path: str, prefix: str, **kwargs) -> requests.Response:
        """An API call with this browser's cookies and the XSRF header of ``prefix``'s server."""
        headers = {"X-XSRFToken": self._xsrf(prefix), **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.hub.url + path, headers=headers, allow_redirects=False, **kwargs)

    def new_token(self, note: str = "a script") -> str:
        """A Hub API token of this user's, as made on the Hub's token page."""
        r = self.api("POST", f"/hub/api/users/{self.name}/tokens", "/hub/", json={"note": note})
        assert r.status_code in (200, 201), (r.status_code, r.text)
        return r.json()["token"]


    def kernel_ws(self, prefix: str, kernel_id: str) -> KernelClient:
        """A kernel websocket under ``prefix``, with this browser's cookies (as JupyterLab opens it)."""
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies if c.name != "_xsrf")
        return _kernel_ws(self.hub, prefix, kernel_id, cookie=cookies)


def with_token(token: str) -> dict:
    return {"Authorization": f"token {token}"}


def kernel_ws(hub: Hub, prefix: str, kernel_id: str, token: str) -> KernelClient:
    """A kernel websocket under a server ``prefix`` (``/services/eda``, ``/user/alice``), with a Hub token."""
    return _kernel_ws(hub, prefix, kernel_id, header=[f"Authorization: token {token}"])


def _kernel_ws(hub: Hub, prefix: str, kernel_id: str, **credentials) -> KernelClient:
    return open_kernel_ws(f"ws://127.0.0.1:{hub.port}{prefix}", kernel_id, **credentials)
