"""Who is calling: per-user tokens in the header, the URL and the browser login form."""

import hashlib

import pytest
import requests

from harness import TOKENS, GatewayServer


@pytest.fixture(scope="module")
def hashed_server(tmp_path_factory):
    tokens = dict(TOKENS)
    tokens["dora"] = "sha256:" + hashlib.sha256(b"dora-secret").hexdigest()
    srv = GatewayServer(tmp_path_factory.mktemp("hashed"), tokens=tokens).start()
    yield srv
    srv.stop()


def whoami(response):
    assert response.status_code == 200, response.text
    return response.json()["identity"]["username"]


@pytest.mark.parametrize("user", ["alice", "bob", "admin"])
def test_authorization_header_identifies_each_user(server, user):
    assert whoami(server.get("/api/me", user)) == user


def test_token_in_url_identifies_user(server):
    r = requests.get(f"{server.base_url}/api/me?token={TOKENS['bob']}", timeout=10)
    assert whoami(r) == "bob"


@pytest.mark.parametrize("header", [None, "token nope", "token ", f"token {TOKENS['alice']}x"])
def test_missing_or_wrong_token_is_refused(server, header):
    headers = {"Authorization": header} if header else {}
    r = requests.get(f"{server.base_url}/api/kernels", headers=headers, timeout=10)
    assert r.status_code == 403
    assert r.headers["Content-Type"].startswith("application/json")


def test_hashed_token_entry(hashed_server):
    r = requests.get(
        f"{hashed_server.base_url}/api/me", headers={"Authorization": "token dora-secret"}, timeout=10
    )
    assert whoami(r) == "dora"
    # the digest itself is not a token
    digest = hashed_server.tokens["dora"]
    r = requests.get(f"{hashed_server.base_url}/api/me", headers={"Authorization": f"token {digest}"}, timeout=10)
    assert r.status_code == 403


@pytest.mark.parametrize("user", ["alice", "carol"])
def test_browser_login_form_sets_cookie(server, user):
    browser = requests.Session()
    page = browser.get(f"{server.base_url}/login", timeout=10)
    assert page.status_code == 200 and "password" in page.text
    xsrf = browser.cookies.get("_xsrf")
    r = browser.post(
        f"{server.base_url}/login",
        data={"password": TOKENS[user], "_xsrf": xsrf},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302, r.text
    # the cookie alone now identifies the user, for reads and (with xsrf) writes
    assert whoami(browser.get(f"{server.base_url}/api/me", timeout=10)) == user
    r = browser.post(
        f"{server.base_url}/api/contents",
        json={"type": "notebook"},
        headers={"X-XSRFToken": xsrf},
        timeout=10,
    )
    assert r.status_code == 201, r.text


def test_login_form_rejects_wrong_token(server):
    browser = requests.Session()
    browser.get(f"{server.base_url}/login", timeout=10)
    r = browser.post(
        f"{server.base_url}/login",
        data={"password": "guess", "_xsrf": browser.cookies.get("_xsrf")},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code != 302
    assert browser.get(f"{server.base_url}/api/me", timeout=10).status_code == 403


def test_tokens_never_logged(server):
    missing = "/api/kernels/00000000-0000-0000-0000-000000000000"
    # warnings (404, 403) are logged with their URL: the token must be scrubbed
    requests.get(f"{server.base_url}{missing}?token={TOKENS['bob']}", timeout=10)
    server.get(missing, "carol")
    requests.get(f"{server.base_url}/api/kernels", headers={"Authorization": "token wrong"}, timeout=10)
    log = server.log()
    assert "00000000-0000-0000-0000-000000000000" in log  # the log is really being read
    for token in TOKENS.values():
        assert token not in log
