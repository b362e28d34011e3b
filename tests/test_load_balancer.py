"""Two eda_gateway servers on one Redis behind a real HAProxy running
examples/load_balancer/haproxy.cfg (docs/scaling.md): each user stays on one server
(by token for scripts, by the proxy's cookie for browsers), kernel websockets pass, and
the budget is one."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from harness import TOKENS, GatewayServer, auth, free_port, open_kernel_ws
from redis_harness import STRICT, RedisServer

pytestmark = pytest.mark.e2e

CONFIG_FILE = Path(__file__).resolve().parents[1] / "examples" / "load_balancer" / "haproxy.cfg"
SERVER_CONFIG = """
c.EDARateLimiter.store_url = {url!r}
c.EDARateLimiter.max_executions_per_minute = 3
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    if shutil.which("haproxy") is None:
        message = "haproxy is missing: scripts/setup.sh installs Debian's haproxy"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp("lb")
    redis_server = RedisServer(tmp).start()
    servers = [GatewayServer(tmp / name, extra_config=SERVER_CONFIG.format(url=redis_server.url)).start()
               for name in ("one", "two")]
    port = free_port()
    env = dict(os.environ, EDA_LISTEN=f"127.0.0.1:{port}",
               EDA_SERVER_1=f"127.0.0.1:{servers[0].port}", EDA_SERVER_2=f"127.0.0.1:{servers[1].port}")
    log = open(tmp / "haproxy.log", "ab")  # noqa: SIM115
    haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(CONFIG_FILE)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(url + "/api", timeout=5).status_code == 200:
                break
        except requests.RequestException:  # not listening yet, or too busy to answer
            pass
        assert haproxy.poll() is None and time.monotonic() < deadline, (tmp / "haproxy.log").read_text()
        time.sleep(0.1)
    yield url, servers
    haproxy.terminate()
    haproxy.wait(10)
    log.close()
    for srv in servers:
        srv.stop()
    redis_server.stop()


def owners_of(servers, kernel_id: str) -> list[int]:
    """Which servers (by index) have this kernel, asked of each directly as admin."""
    return [i for i, srv in enumerate(servers) if any(k["id"] == kernel_id for k in srv.get("/api/kernels", "admin").json())]


def test_each_token_stays_on_one_server(proxy):
    url, servers = proxy
    for user in ("alice", "bob", "carol"):
        r = requests.post(f"{url}/api/kernels", headers=auth(user), json={}, timeout=60)
        assert r.status_code == 201, r.text
        kernel = r.json()["id"]
        assert len(owners_of(servers, kernel)) == 1
        for _ in range(5):  # every later request of the same token reaches that server
            listed = requests.get(f"{url}/api/kernels", headers=auth(user), timeout=30).json()
            assert kernel in {k["id"] for k in listed}


def test_a_browser_stays_on_the_server_it_logged_in_to(proxy):
    url, servers = proxy
    browser = requests.Session()
    browser.get(f"{url}/login", timeout=30)
    assert "EDA_SERVER" in browser.cookies  # the proxy's affinity cookie
    r = browser.post(f"{url}/login", data={"password": TOKENS["bob"], "_xsrf": browser.cookies.get("_xsrf")},
                     timeout=30)
    assert r.status_code == 200 and "/login" not in r.url, r.url
    r = browser.post(f"{url}/api/kernels", json={}, headers={"X-XSRFToken": browser.cookies.get("_xsrf")}, timeout=60)
    assert r.status_code == 201, r.text
    kernel = r.json()["id"]
    for _ in range(5):
        assert kernel in {k["id"] for k in browser.get(f"{url}/api/kernels", timeout=30).json()}


def test_kernel_websockets_pass_and_the_budget_is_one_across_the_servers(proxy):
    url, servers = proxy
    r = requests.post(f"{url}/api/kernels", headers=auth("admin"), json={}, timeout=60)
    assert r.status_code == 201, r.text
    client = open_kernel_ws(f"ws://{url.removeprefix('http://')}", r.json()["id"],
                            header=[f"Authorization: token {TOKENS['admin']}"])
    try:
        assert client.run("6 * 7").result == "42"
        # admin's other executions go straight to the other server: one budget of 3 in all
        other = next(i for i, srv in enumerate(servers) if not owners_of([srv], r.json()["id"]))
        direct = servers[other].kernel_ws(servers[other].start_kernel("admin"), "admin")
        try:
            assert direct.run("1").error is None and direct.run("2").error is None
            refused = direct.run("3")
            assert refused.error and refused.error["ename"] == "RateLimitExceeded", refused.messages
        finally:
            direct.close()
    finally:
        client.close()
