"""Who is calling, where a real server process matters: the browser login form writing with its
cookie, tokens kept out of a real log, guessing throttled per address, logout across a restart.
The identity decisions themselves run in process (tests/test_identity_inproc.py)."""

import hashlib
import math
import time

import pytest
import requests

from harness import TOKENS, GatewayServer

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)


def whoami(response):
    assert response.status_code == 200, response.text
    return response.json()["identity"]["username"]


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


def _from(address: str, server, path: str, token: str) -> tuple[int, dict]:
    """A GET from another loopback address: another client, as the server sees it."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10, source_address=(address, 0))
    try:
        conn.request("GET", path, headers={"Authorization": f"token {token}"})
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        conn.close()


def test_guessing_is_throttled_while_others_work(server):
    """Wrong tokens from one address: a few at full speed, then 429 + Retry-After without
    comparing; alice (another address) and the guesser's own valid token afterwards are fine."""
    started = time.monotonic()
    answers = [_from("127.0.0.7", server, "/api/kernels", f"guess-{i:04d}") for i in range(40)]
    elapsed = time.monotonic() - started
    refused = [status for status, _ in answers if status == 403]
    throttled = [headers for status, headers in answers if status == 429]
    # 10 free failures, the 11th starts a 1 s wait, each later failure doubles it: within
    # `elapsed` seconds at most log2(elapsed + 1) + 1 waits can have run out
    assert 11 <= len(refused) <= 11 + math.log2(elapsed + 1) + 1, ([s for s, _ in answers], elapsed)
    assert len(throttled) == 40 - len(refused)
    assert all(int(h["Retry-After"]) >= 1 for h in throttled)
    # during the backoff even a right token from that address waits (nothing is compared)
    assert _from("127.0.0.7", server, "/api/kernels", TOKENS["bob"])[0] == 429
    assert whoami(server.get("/api/me", "alice")) == "alice"  # from 127.0.0.1: not locked out
    metrics = server.get("/metrics", "admin").text
    assert 'eda_gateway_auth_failures_total{kind="token"}' in metrics
    assert 'eda_gateway_auth_throttled_total{kind="token"}' in metrics
    log = server.log()
    assert "wrong tokens from 127.0.0.7" in log and "guess-0" not in log  # the address, never the secret
    assert log.count("wrong tokens from 127.0.0.7") <= 6  # 1, 2, 4, 8: not a line per guess


def test_a_cookie_is_refused_after_logout_even_after_a_restart(tmp_path):
    server = GatewayServer(tmp_path).start()
    try:
        browser = requests.Session()
        browser.get(f"{server.base_url}/login", timeout=10)
        login = {"password": TOKENS["carol"], "_xsrf": browser.cookies.get("_xsrf")}
        assert browser.post(f"{server.base_url}/login", data=login, allow_redirects=False, timeout=10).status_code == 302
        kept = {c.name: c.value for c in browser.cookies if c.name.startswith("username-")}
        assert kept and whoami(requests.get(f"{server.base_url}/api/me", cookies=kept, timeout=10)) == "carol"
        assert browser.get(f"{server.base_url}/logout", timeout=10).status_code == 200
        # someone kept a copy of the cookie: it is dead on the server, not just in the browser
        assert requests.get(f"{server.base_url}/api/me", cookies=kept, timeout=10).status_code == 403
        # and stays dead after a restart (the cookie secret survives it, so must the revocation)
        server.stop()
        server.start()
        assert requests.get(f"{server.base_url}/api/me", cookies=kept, timeout=10).status_code == 403
        browser.post(f"{server.base_url}/login", data=login, timeout=10)  # a new login works again
        assert whoami(browser.get(f"{server.base_url}/api/me", timeout=10)) == "carol"
    finally:
        server.stop()


def test_short_plain_tokens_draw_a_warning(tmp_path):
    tokens = {**TOKENS, "eve": "Zq9x", "dora": "sha256:" + hashlib.sha256(b"x").hexdigest()}
    srv = GatewayServer(tmp_path, tokens=tokens).start()
    try:
        log = srv.log()
        assert "the tokens of admin, alice, bob, carol, eve are shorter than 16 characters" in log, log[-2000:]
        assert "Zq9x" not in log  # the token itself is not logged
    finally:
        srv.stop()
