"""eda_gateway inside the single-user servers JupyterHub spawns, one per user.

The Hub runs examples/jupyterhub/singleuser/jupyterhub_config.py with a budget of 3
executions a minute; it spawns alice's server (jupyterhub-singleuser, eda_gateway
enabled by its jupyter_server config) when she asks, as the Hub's home page does.
"""

from __future__ import annotations

import pytest
import requests

from hub_harness import Hub, kernel_ws, with_token

pytestmark = pytest.mark.e2e

PER_MINUTE = 3


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("hub"), "singleuser",
              env={"EDA_DEMO_EXECUTIONS_PER_MINUTE": str(PER_MINUTE)}).start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def alice(hub):
    """alice, logged in, her server spawned by the Hub and ready, and a token of hers."""
    person = hub.login("alice")
    person.token = person.new_token("tests")
    hub.spawn("alice", person.token)
    page = person.open("/user/alice/lab")
    assert page.status_code == 200 and page.url.endswith("/user/alice/lab"), (page.status_code, page.url)
    return person


PREFIX = "/user/alice"


def test_the_server_knows_its_owner_from_the_hub(alice):
    r = alice.api("GET", f"{PREFIX}/api/me", PREFIX)
    assert r.status_code == 200 and r.json()["identity"]["username"] == "alice", r.text
    r = alice.api("GET", f"{PREFIX}/advanced-eda/api/rate-limit-status", PREFIX)
    assert r.status_code == 200, r.text
    assert r.json()["user"] == "alice"
    assert r.json()["limits"]["max_executions_per_minute"] == PER_MINUTE
    # her own server: she is its admin, as in a plain Hub server
    assert alice.api("GET", f"{PREFIX}/advanced-eda/api/admin/users", PREFIX).status_code == 200


def test_the_examples_kernels_fit_in_the_spawners_limits(hub, alice):
    log = hub.log()
    assert "JupyterHub's server of 'alice'" in log
    assert "the Hub's limit comes first" not in log  # 4 x 512 MiB in 3G, 4 x 50% in 2 cores


def test_her_notebook_execution_is_limited_and_refused_past_her_budget(hub, alice):
    r = alice.api("POST", f"{PREFIX}/api/kernels", PREFIX, json={})
    assert r.status_code == 201, (r.status_code, r.text)
    kernel = r.json()["id"]
    client = kernel_ws(hub, PREFIX, kernel, alice.token)
    try:
        assert client.run("1 + 1").result == "2"
        assert client.run("2 + 2").result == "4"
        # the sandbox's per-kernel limit (512 MB), inside the Hub's limit of the whole server
        hog = client.run("x = bytearray(900 * 1024 * 1024); x[::4096] = b'x' * len(x[::4096])", timeout=120)
        assert hog.error and hog.error["ename"] == "MemoryLimitExceeded", hog.messages
        # her fourth execution this minute: refused before it reaches the (restarting) kernel
        refused = client.run("3 + 3")
        assert refused.error and refused.error["ename"] == "RateLimitExceeded", refused.messages
        assert f"at most {PER_MINUTE} executions" in refused.error["evalue"]
    finally:
        client.close()


def test_people_she_shares_her_server_with_are_other_users_in_it(hub, alice):
    r = requests.post(f"{hub.url}/hub/api/shares/alice/", headers=with_token(alice.token),
                      json={"user": "bob"}, timeout=30)
    assert r.status_code in (200, 201), (r.status_code, r.text)
    bob = hub.login("bob")
    page = bob.open(f"{PREFIX}/lab")
    assert page.status_code == 200 and page.url.endswith(f"{PREFIX}/lab"), (page.status_code, page.url)
    r = bob.api("GET", f"{PREFIX}/api/me", PREFIX)
    assert r.status_code == 200 and r.json()["identity"]["username"] == "bob", r.text
    status = bob.api("GET", f"{PREFIX}/advanced-eda/api/rate-limit-status", PREFIX).json()
    assert status["user"] == "bob" and status["executions_in_window"] == 0  # his own budget, not alice's
    r = bob.api("POST", f"{PREFIX}/api/kernels", PREFIX, json={})
    assert r.status_code == 201, r.text
    bobs = r.json()["id"]
    guest = bob.kernel_ws(PREFIX, bobs)
    try:  # the server's Hub token (it acts as alice at the Hub) never reaches a kernel
        env = guest.run("import os; sorted(k for k in os.environ if 'TOKEN' in k or 'SECRET' in k)")
        assert env.result == "[]", env.messages
    finally:
        guest.close()
    listed = {k["id"] for k in bob.api("GET", f"{PREFIX}/api/kernels", PREFIX).json()}
    alices = {k["id"] for k in alice.api("GET", f"{PREFIX}/api/kernels", PREFIX).json()}
    assert listed == {bobs} and bobs in alices  # the owner is the server's admin: she sees his
    assert bob.api("GET", f"{PREFIX}/advanced-eda/api/admin/users", PREFIX).status_code == 403
