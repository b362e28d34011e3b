"""Kernels and sessions belong to the user who started them; admins act on all."""

import uuid

import pytest
import websocket

from harness import TOKENS

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)


@pytest.fixture(scope="module")
def alice_kernel(server):
    kid = server.start_kernel("alice")
    yield kid
    server.delete(f"/api/kernels/{kid}", "admin")


def session_body(path, kernel=None, name="python3"):
    return {"path": path, "type": "notebook", "name": path, "kernel": kernel or {"name": name}}


def assert_json_403(r):
    assert r.status_code == 403, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    assert "message" in r.json()


@pytest.mark.parametrize(
    "method, suffix",
    [("GET", ""), ("DELETE", ""), ("POST", "/interrupt"), ("POST", "/restart")],
)
def test_other_user_cannot_touch_kernel(server, alice_kernel, method, suffix):
    assert_json_403(server.request(method, f"/api/kernels/{alice_kernel}{suffix}", "bob"))
    # and the kernel is still alive and alice's
    assert server.get(f"/api/kernels/{alice_kernel}", "alice").status_code == 200


def test_other_user_cannot_connect_websocket(server, alice_kernel):
    url = f"ws://127.0.0.1:{server.port}/api/kernels/{alice_kernel}/channels"
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        websocket.create_connection(url, header=[f"Authorization: token {TOKENS['bob']}"], timeout=10)
    assert exc.value.status_code == 403
    # the owner can
    client = server.kernel_ws(alice_kernel, "alice")
    assert client.run("6*7").result == "42"
    client.close()


def test_post_kernels_naming_another_users_kernel(server, alice_kernel):
    r = server.post("/api/kernels", "bob", json={"name": "python3", "kernel_id": alice_kernel})
    assert_json_403(r)


def test_kernel_id_must_be_uuid(server):
    r = server.post("/api/kernels", "bob", json={"name": "python3", "kernel_id": "../../etc/passwd"})
    assert r.status_code == 400, r.text


def test_listings_show_only_own_kernels(server, alice_kernel):
    bob_kernel = server.start_kernel("bob")
    try:
        alice_ids = {k["id"] for k in server.get("/api/kernels", "alice").json()}
        bob_ids = {k["id"] for k in server.get("/api/kernels", "bob").json()}
        admin_ids = {k["id"] for k in server.get("/api/kernels", "admin").json()}
        assert alice_kernel in alice_ids and bob_kernel not in alice_ids
        assert bob_kernel in bob_ids and alice_kernel not in bob_ids
        assert {alice_kernel, bob_kernel} <= admin_ids
    finally:
        server.delete(f"/api/kernels/{bob_kernel}", "bob")


def test_session_naming_another_users_kernel_is_refused(server, alice_kernel):
    r = server.post("/api/sessions", "bob", json=session_body("steal.ipynb", {"id": alice_kernel}))
    assert_json_403(r)
    # the sessions hole found in review: nothing was created that could delete alice's kernel
    assert server.get("/api/sessions", "bob").json() == []
    assert server.get(f"/api/kernels/{alice_kernel}", "alice").status_code == 200


def test_patch_session_onto_another_users_kernel_is_refused(server, alice_kernel):
    r = server.post("/api/sessions", "bob", json=session_body("mine.ipynb"))
    assert r.status_code == 201, r.text
    sid, own_kernel = r.json()["id"], r.json()["kernel"]["id"]
    try:
        r = server.patch(f"/api/sessions/{sid}", "bob", json={"kernel": {"id": alice_kernel}})
        assert_json_403(r)
        assert server.get(f"/api/sessions/{sid}", "bob").json()["kernel"]["id"] == own_kernel
    finally:
        server.delete(f"/api/sessions/{sid}", "bob")
    assert server.get(f"/api/kernels/{alice_kernel}", "alice").status_code == 200


def test_sessions_are_per_user_and_private(server):
    a = server.post("/api/sessions", "alice", json=session_body("Untitled.ipynb")).json()
    b = server.post("/api/sessions", "bob", json=session_body("Untitled.ipynb")).json()
    try:
        # same path, two sessions, two kernels
        assert a["id"] != b["id"] and a["kernel"]["id"] != b["kernel"]["id"]
        assert a["path"] == b["path"] == "Untitled.ipynb"
        # posting the same path again finds the caller's own session
        again = server.post("/api/sessions", "bob", json=session_body("Untitled.ipynb")).json()
        assert again["id"] == b["id"]
        assert [s["id"] for s in server.get("/api/sessions", "alice").json()] == [a["id"]]
        assert [s["id"] for s in server.get("/api/sessions", "bob").json()] == [b["id"]]
        assert {a["id"], b["id"]} <= {s["id"] for s in server.get("/api/sessions", "admin").json()}
        for method in ("GET", "DELETE", "PATCH"):
            kwargs = {"json": {"path": "x.ipynb"}} if method == "PATCH" else {}
            assert_json_403(server.request(method, f"/api/sessions/{a['id']}", "bob", **kwargs))
        assert server.get(f"/api/sessions/{a['id']}", "alice").json()["path"] == "Untitled.ipynb"
    finally:
        server.delete(f"/api/sessions/{a['id']}", "alice")
        server.delete(f"/api/sessions/{b['id']}", "bob")


def test_admin_acts_on_any_kernel(server):
    kid = server.start_kernel("carol")
    assert server.get(f"/api/kernels/{kid}", "admin").status_code == 200
    assert server.post(f"/api/kernels/{kid}/interrupt", "admin").status_code == 204
    client = server.kernel_ws(kid, "admin")
    assert client.run("1+1").result == "2"
    client.close()
    assert server.delete(f"/api/kernels/{kid}", "admin").status_code == 204
    assert kid not in {k["id"] for k in server.get("/api/kernels", "carol").json()}


def test_unknown_kernel_is_404_not_403(server):
    r = server.get(f"/api/kernels/{uuid.uuid4()}", "bob")
    assert r.status_code == 404


def test_terminals_are_for_admins(server):
    assert_json_403(server.post("/api/terminals", "bob"))
    assert_json_403(server.get("/api/terminals", "bob"))
    r = server.post("/api/terminals", "admin")
    assert r.status_code == 200, r.text
    assert server.delete(f"/api/terminals/{r.json()['name']}", "admin").status_code == 204


def test_language_server_sockets_are_for_admins(server):
    """jupyter_lsp would run a language server per language, unconfined and shared by all users."""
    url = f"ws://127.0.0.1:{server.port}/lsp/ws/pylsp"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, header=[f"Authorization: token {server.tokens['bob']}"], timeout=30)
    assert refused.value.status_code == 403
    admin = websocket.create_connection(url, header=[f"Authorization: token {server.tokens['admin']}"], timeout=30)
    admin.close()
    # the read-only status listing stays open
    assert server.get("/lsp/status", "bob").status_code == 200


def test_only_admins_shut_the_server_down(server):
    assert_json_403(server.post("/api/shutdown", "bob"))
    assert server.get("/api/status", "bob").status_code == 200


def resolved(server, user, path, kernel):
    r = server.get("/api/resolvePath", user, params={"path": path, "kernel": kernel})
    assert r.status_code == 200, r.text
    return r.json()


def test_resolve_path_keeps_to_the_callers_kernels_and_folders(server, alice_kernel):
    """jupyter_server's /api/resolvePath answered for anyone's kernel, and its kernel
    scope said whether any path on the host exists (checked as root)."""
    assert server.put("/api/contents/mine.txt", "alice", json={"type": "file", "format": "text",
                                                                "content": "x"}).status_code == 201
    own_file = str(server.root_dir / "alice" / "mine.txt")
    answer = resolved(server, "alice", own_file, alice_kernel)
    assert {"scope": "kernel", "path": own_file} in answer["resolved"]
    for elsewhere in ("/etc/passwd", "~/.bashrc", str(server.runtime_dir)):
        answer = resolved(server, "alice", elsewhere, alice_kernel)
        assert not [e for e in answer["resolved"] if e["scope"] == "kernel"], (elsewhere, answer)
    # bob cannot use alice's kernel to probe her folder: answered as an unknown kernel
    answer = resolved(server, "bob", own_file, alice_kernel)
    assert not [e for e in answer["resolved"] if e["scope"] == "kernel"], answer
    unknown = resolved(server, "bob", own_file, str(uuid.uuid4()))
    assert [u["reason"].split()[-3:] for u in answer["unresolved"]] == [u["reason"].split()[-3:] for u in unknown["unresolved"]]
