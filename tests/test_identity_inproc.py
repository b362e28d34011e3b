"""Who is calling, in process (pytest-jupyter's ``jp_serverapp`` / ``jp_fetch``): per-user
tokens in the header and the URL, hashed entries, and the identity mode eda_gateway picks
for jupyter_server's own one-token login. tests/test_identity.py and tests/test_clients.py
keep the subprocess checks (logs of a real process, restarts, kernels, client addresses).
"""

from __future__ import annotations

import getpass
import hashlib
import json

import pytest
from tornado.httpclient import HTTPClientError

from harness import TOKENS, auth, eda_config

DORA_SECRET = "dora-secret"
DORA_DIGEST = "sha256:" + hashlib.sha256(DORA_SECRET.encode()).hexdigest()
PERSONAL_TOKEN = "personal-token-0123456789"


def _single_token_config(tmp_path, extra: dict | None = None):
    """jupyter_server's own login with one token (a personal ``jupyter lab``), eda_gateway on."""
    config = eda_config(tmp_path, extra)
    del config.ServerApp["identity_provider_class"]
    del config["EDAIdentityProvider"]
    config.IdentityProvider.token = PERSONAL_TOKEN
    return config


MULTI = "multi"
SINGLE = "single"
SINGLE_NAMED = "single-named"
FORCED_MULTI = "forced-multi"


@pytest.fixture
def jp_server_config(tmp_path, request):
    """Per-user tokens (TOKENS plus dora's hashed entry) unless a test asks for another login."""
    kind = getattr(request, "param", MULTI)
    if kind == SINGLE:
        return _single_token_config(tmp_path)
    if kind == SINGLE_NAMED:
        return _single_token_config(tmp_path, {"EDAGateway": {"single_user_name": "ana"}})
    if kind == FORCED_MULTI:
        return _single_token_config(tmp_path, {"EDAGateway": {"identity_mode": "multi-user"}})
    return eda_config(tmp_path, {"EDAIdentityProvider": {"user_tokens": {**TOKENS, "dora": DORA_DIGEST}}})


def _gateway(serverapp):
    (gateway,) = serverapp.extension_manager.extension_apps["eda_gateway"]
    return gateway


async def _status_of(fetch, *parts, **kwargs) -> int:
    try:
        return (await fetch(*parts, **kwargs)).code
    except HTTPClientError as e:
        return e.code


async def _me(fetch, **kwargs) -> str:
    response = await fetch("api", "me", **kwargs)
    assert response.code == 200
    return json.loads(response.body)["identity"]["username"]


# --- per-user tokens (test_identity.py's first checks) ---------------------------------


@pytest.mark.parametrize("user", ["alice", "bob", "admin"])
async def test_the_authorization_header_identifies_each_user(jp_fetch, user):
    assert await _me(jp_fetch, headers=auth(user)) == user


async def test_a_token_in_the_url_identifies_its_user(jp_fetch, jp_serverapp):
    # the header pytest-jupyter adds by default carries no token: the URL's decides
    assert await _me(jp_fetch, params={"token": TOKENS["bob"]}, headers={"Authorization": ""}) == "bob"


@pytest.mark.parametrize("header", [None, "token nope", "token ", f"token {TOKENS['alice']}x"])
async def test_a_missing_or_wrong_token_is_refused_with_json(jp_serverapp, http_server_client, jp_base_url, header):
    headers = {"Authorization": header} if header else {}  # jp_fetch would always send one
    response = await http_server_client.fetch(f"{jp_base_url}api/kernels", headers=headers, raise_error=False)
    assert response.code == 403
    assert response.headers["Content-Type"].startswith("application/json")


async def test_a_hashed_entry_takes_the_token_not_the_digest(jp_fetch):
    assert await _me(jp_fetch, headers={"Authorization": f"token {DORA_SECRET}"}) == "dora"
    assert await _status_of(jp_fetch, "api", "me", headers={"Authorization": f"token {DORA_DIGEST}"}) == 403


async def test_per_user_tokens_are_multi_user_mode(jp_serverapp):
    identity = _gateway(jp_serverapp).identity
    assert not identity.single_user and identity.owner == ""
    assert "multi-user mode: identity provider eda_gateway.auth.EDAIdentityProvider names users" in (
        identity.describe())


# --- identity modes under jupyter_server's own login (test_clients.py's checks) ----------


@pytest.mark.parametrize("jp_server_config", [SINGLE], indirect=True)
async def test_the_default_login_is_one_stable_owner(jp_fetch, jp_serverapp):
    me = getpass.getuser()
    identity = _gateway(jp_serverapp).identity
    assert identity.single_user and identity.owner == me
    assert f"single-user mode: every authenticated request is {me!r}" in identity.describe()
    token = {"Authorization": f"token {PERSONAL_TOKEN}"}
    # every token-only request is the same owner, not a new anonymous user each time
    assert await _me(jp_fetch, headers=token) == me
    assert await _me(jp_fetch, headers=token) == me
    status = await jp_fetch("advanced-eda", "api", "rate-limit-status", headers=token)
    assert json.loads(status.body)["user"] == me
    assert await _status_of(jp_fetch, "api", "kernels", headers={"Authorization": "token nope"}) == 403


@pytest.mark.parametrize("jp_server_config", [SINGLE_NAMED], indirect=True)
async def test_the_single_owner_can_be_named(jp_fetch, jp_serverapp):
    assert _gateway(jp_serverapp).identity.owner == "ana"
    assert await _me(jp_fetch, headers={"Authorization": f"token {PERSONAL_TOKEN}"}) == "ana"


@pytest.mark.parametrize("jp_server_config", [FORCED_MULTI], indirect=True)
async def test_multi_user_mode_can_be_forced(jp_fetch, jp_serverapp):
    identity = _gateway(jp_serverapp).identity
    assert not identity.single_user
    assert "multi-user mode: EDAGateway.identity_mode is 'multi-user'" in identity.describe()
    token = {"Authorization": f"token {PERSONAL_TOKEN}"}
    # jupyter_server's provider names nobody: each token-only request is a new anonymous user
    assert await _me(jp_fetch, headers=token) != await _me(jp_fetch, headers=token)


# --- the browser's login form -------------------------------------------------------------


def _cookies(response) -> dict:
    jar = {}
    for header in response.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        jar[name] = rest.split(";", 1)[0]
    return jar


def _cookie_header(jar: dict) -> str:
    return "; ".join(f"{name}={value}" for name, value in jar.items())


async def _login(fetch, password: str):
    page = await fetch("login", headers={"Authorization": ""})
    assert page.code == 200 and b"password" in page.body
    jar = _cookies(page)
    body = f"password={password}&_xsrf={jar['_xsrf']}"
    try:
        response = await fetch("login", method="POST", body=body, follow_redirects=False,
                               headers={"Authorization": "", "Cookie": _cookie_header(jar)})
    except HTTPClientError as e:
        response = e.response
    return response, jar


@pytest.mark.parametrize("user", ["alice", "carol"])
async def test_the_login_form_takes_a_token_and_the_cookie_identifies_the_user(jp_fetch, user):
    response, jar = await _login(jp_fetch, TOKENS[user])
    assert response.code == 302
    jar.update(_cookies(response))
    assert any(name.startswith("username-") for name in jar)
    assert await _me(jp_fetch, headers={"Authorization": "", "Cookie": _cookie_header(jar)}) == user


async def test_the_login_form_refuses_a_wrong_token(jp_fetch):
    response, jar = await _login(jp_fetch, "guess")
    assert response.code != 302
    jar.update(_cookies(response))
    assert not any(name.startswith("username-") for name in jar)
    assert await _status_of(jp_fetch, "api", "me", headers={"Authorization": "", "Cookie": _cookie_header(jar)}) == 403
