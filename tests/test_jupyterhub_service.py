"""eda_gateway as a JupyterHub service: real Hub, real proxy, real logins.

The Hub runs examples/jupyterhub/service/jupyterhub_config.py: users alice and bob
(Hub group "analysts"), erin (Hub group "eda-admins", an admin group of eda_gateway),
ada (a Hub admin), all with access to the service; carol, a Hub user without it.
"""

from __future__ import annotations

import pytest

from hub_harness import Hub, kernel_ws, with_token

pytestmark = pytest.mark.e2e

SERVICE = "/services/eda"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("hub"), "service").start(ready_path=f"{SERVICE}/api")
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def people(hub):
    """Each person logged in at the Hub once, and through to the service's JupyterLab."""
    logged_in = {}
    for name in ("alice", "bob", "erin", "ada"):
        person = hub.login(name)
        page = person.open(f"{SERVICE}/lab")
        assert page.status_code == 200 and page.url == f"{hub.url}{SERVICE}/lab", (page.status_code, page.url)
        logged_in[name] = person
    return logged_in


def me(person) -> str:
    r = person.api("GET", f"{SERVICE}/api/me", SERVICE)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["identity"]["username"]


def test_the_service_knows_each_person_by_their_hub_name(people):
    for name, person in people.items():
        assert me(person) == name


def test_each_runs_code_and_sees_only_their_own_kernels(hub, people):
    alice, bob = people["alice"], people["bob"]
    r = alice.api("POST", f"{SERVICE}/api/kernels", SERVICE, json={})
    assert r.status_code == 201, (r.status_code, r.text)
    kernel = r.json()["id"]
    client = alice.kernel_ws(SERVICE, kernel)  # her browser's cookies, as JupyterLab connects
    try:
        assert client.run("6 * 7").result == "42"
    finally:
        client.close()
    r = bob.api("POST", f"{SERVICE}/api/kernels", SERVICE, json={})
    assert r.status_code == 201, r.text
    bobs = r.json()["id"]

    def listed(person):
        r = person.api("GET", f"{SERVICE}/api/kernels", SERVICE)
        assert r.status_code == 200, r.text
        return {k["id"] for k in r.json()}

    assert kernel in listed(alice) and bobs not in listed(alice)
    assert bobs in listed(bob) and kernel not in listed(bob)
    assert bob.api("GET", f"{SERVICE}/api/kernels/{kernel}", SERVICE).status_code == 403
    assert bob.api("DELETE", f"{SERVICE}/api/kernels/{kernel}", SERVICE).status_code == 403
    # a Hub admin is an eda_gateway admin: sees everyone's
    assert {kernel, bobs} <= listed(people["ada"])


def test_hub_admins_and_admin_group_members_get_the_admin_endpoints(people):
    admin_users = f"{SERVICE}/advanced-eda/api/admin/users"
    assert people["ada"].api("GET", admin_users, SERVICE).status_code == 200  # a Hub admin
    assert people["erin"].api("GET", admin_users, SERVICE).status_code == 200  # Hub group in admin_groups
    r = people["alice"].api("GET", admin_users, SERVICE)
    assert r.status_code == 403, r.text
    assert r.json()["message"]


def test_hub_groups_are_eda_gateway_groups(people):
    def per_minute(person):
        r = person.api("GET", f"{SERVICE}/advanced-eda/api/rate-limit-status", SERVICE)
        assert r.status_code == 200, r.text
        assert r.json()["user"] == person.name
        return r.json()["limits"]["max_executions_per_minute"]

    assert per_minute(people["alice"]) == 20  # user_limits["@analysts"]: a Hub group
    assert per_minute(people["ada"]) == 10  # in no such group: the default


def test_a_hub_api_token_used_by_a_script_is_its_user(hub, people):
    import requests

    token = people["alice"].new_token("an agent")
    r = requests.get(f"{hub.url}{SERVICE}/api/me", headers=with_token(token), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["identity"]["username"] == "alice"
    r = requests.get(f"{hub.url}{SERVICE}/advanced-eda/api/rate-limit-status", headers=with_token(token), timeout=30)
    assert r.status_code == 200 and r.json()["user"] == "alice", r.text
    r = requests.post(f"{hub.url}{SERVICE}/api/kernels", headers=with_token(token), json={}, timeout=60)
    assert r.status_code == 201, r.text
    kernel = r.json()["id"]
    client = kernel_ws(hub, SERVICE, kernel, token)
    try:
        assert client.run("'from a script'").result == "'from a script'"
    finally:
        client.close()
    # the same user as her browser: her cookies see the kernel, bob's do not
    r = people["alice"].api("GET", f"{SERVICE}/api/kernels/{kernel}", SERVICE)
    assert r.status_code == 200, r.text
    assert people["bob"].api("GET", f"{SERVICE}/api/kernels/{kernel}", SERVICE).status_code == 403


def test_a_user_without_access_to_the_service_gets_403(hub):
    import requests

    carol = hub.login("carol")
    assert carol.open(f"{SERVICE}/lab").status_code == 403
    token = carol.new_token("a script")
    for path in ("/api/kernels", "/api/me", "/advanced-eda/api/rate-limit-status"):
        r = requests.get(f"{hub.url}{SERVICE}{path}", headers=with_token(token), timeout=30)
        assert r.status_code == 403, (path, r.status_code, r.text)
    r = requests.post(f"{hub.url}{SERVICE}/api/kernels", headers=with_token(token), json={}, timeout=30)
    assert r.status_code == 403, r.text


def test_a_hub_spawned_server_runs_its_kernels_on_the_service_as_its_owner(hub, people):
    """alice's own server (the Hub spawns it) uses the service as its kernel gateway
    (GatewayClient, with the server's Hub token): her kernels, her budget, on the service."""
    import requests

    alice = people["alice"]
    token = alice.new_token("her own server")
    hub.spawn("alice", token)
    r = requests.post(f"{hub.url}/user/alice/api/kernels", headers=with_token(token), json={}, timeout=120)
    assert r.status_code == 201, (r.status_code, r.text)
    kernel = r.json()["id"]
    # the kernel lives on the service, as alice's: her browser's session there lists it
    on_service = alice.api("GET", f"{SERVICE}/api/kernels/{kernel}", SERVICE)
    assert on_service.status_code == 200, on_service.text
    assert people["bob"].api("GET", f"{SERVICE}/api/kernels/{kernel}", SERVICE).status_code == 403
    client = kernel_ws(hub, "/user/alice", kernel, token)  # through her server, then the gateway
    try:
        assert client.run("6 * 7").result == "42"
    finally:
        client.close()
    status = alice.api("GET", f"{SERVICE}/advanced-eda/api/rate-limit-status", SERVICE).json()
    assert status["user"] == "alice" and status["executions_in_window"] >= 1
