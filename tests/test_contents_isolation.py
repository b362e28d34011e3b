"""Each user's contents API is rooted at their own folder; admins see all."""

import pytest
import requests

from harness import TOKENS


def put_text(server, user, path, text):
    return server.put(f"/api/contents/{path}", user, json={"type": "file", "format": "text", "content": text})


@pytest.fixture(scope="module", autouse=True)
def files(server):
    assert put_text(server, "alice", "secret.txt", "alice's secret").status_code == 201
    assert server.put("/api/contents/reports", "alice", json={"type": "directory"}).status_code == 201
    assert put_text(server, "alice", "reports/q1.txt", "q1").status_code == 201


def test_owner_reads_own_file(server):
    r = server.get("/api/contents/secret.txt", "alice")
    assert r.status_code == 200 and r.json()["content"] == "alice's secret"
    assert r.json()["path"] == "secret.txt"


def test_other_user_cannot_read_list_or_overwrite(server):
    assert server.get("/api/contents/secret.txt", "bob").status_code == 404
    assert server.get("/api/contents/reports", "bob").status_code == 404
    listing = server.get("/api/contents", "bob").json()["content"]
    assert "secret.txt" not in {item["name"] for item in listing}
    # bob writing the same path writes his own file
    assert put_text(server, "bob", "secret.txt", "bob's").status_code in (200, 201)
    assert server.get("/api/contents/secret.txt", "alice").json()["content"] == "alice's secret"
    assert server.get("/api/contents/secret.txt", "bob").json()["content"] == "bob's"
    # deleting and renaming act on bob's own folder only
    assert server.delete("/api/contents/reports/q1.txt", "bob").status_code == 404
    r = server.patch("/api/contents/secret.txt", "bob", json={"path": "stolen.txt"})
    assert r.status_code == 200
    assert server.get("/api/contents/secret.txt", "alice").status_code == 200
    assert server.get("/api/contents/stolen.txt", "alice").status_code == 404


def test_files_land_in_per_user_folders_on_disk(server):
    assert (server.root_dir / "alice" / "secret.txt").read_text() == "alice's secret"
    assert not (server.root_dir / "secret.txt").exists()


def test_admin_sees_every_users_folder(server):
    names = {item["name"] for item in server.get("/api/contents", "admin").json()["content"]}
    assert {"alice", "bob"} <= names
    r = server.get("/api/contents/alice/secret.txt", "admin")
    assert r.status_code == 200 and r.json()["content"] == "alice's secret"


def test_checkpoints_are_per_user(server):
    for user in ("alice", "bob"):
        put_text(server, user, "same.txt", f"{user} v1")
        assert server.post("/api/contents/same.txt/checkpoints", user).status_code == 201
        put_text(server, user, "same.txt", f"{user} v2")
    cp = server.get("/api/contents/same.txt/checkpoints", "alice").json()[0]["id"]
    assert server.post(f"/api/contents/same.txt/checkpoints/{cp}", "alice").status_code == 204
    assert server.get("/api/contents/same.txt", "alice").json()["content"] == "alice v1"
    assert server.get("/api/contents/same.txt", "bob").json()["content"] == "bob v2"


@pytest.mark.parametrize(
    "path",
    [
        "../alice/secret.txt",
        "..%2falice%2fsecret.txt",
        "%2e%2e/alice/secret.txt",
        "%2e%2e%2falice%2fsecret.txt",
        "foo/../../alice/secret.txt",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "..%5calice%5csecret.txt",
    ],
)
def test_path_tricks_fail_with_4xx(server, path):
    r = requests.get(
        f"{server.base_url}/api/contents/{path}",
        headers={"Authorization": f"token {TOKENS['bob']}"},
        timeout=10,
    )
    assert 400 <= r.status_code < 500, (path, r.status_code)
    assert "alice's secret" not in r.text and "root:" not in r.text


def test_path_tricks_on_write_fail(server):
    for path in ("..%2falice%2fsecret.txt", "%2e%2e/alice/secret.txt"):
        r = requests.put(
            f"{server.base_url}/api/contents/{path}",
            headers={"Authorization": f"token {TOKENS['bob']}"},
            json={"type": "file", "format": "text", "content": "pwned"},
            timeout=10,
        )
        assert 400 <= r.status_code < 500, (path, r.status_code)
    assert server.get("/api/contents/secret.txt", "alice").json()["content"] == "alice's secret"


def test_kernel_started_with_path_runs_in_users_folder(server):
    kid = server.start_kernel("alice", name="python3", path="reports")
    try:
        client = server.kernel_ws(kid, "alice")
        cwd = client.run("import os; os.getcwd()").result.strip("'")
        client.close()
        assert cwd == str(server.root_dir / "alice" / "reports")
    finally:
        server.delete(f"/api/kernels/{kid}", "alice")


def test_kernel_path_cannot_escape_users_folder(server):
    r = server.post("/api/kernels", "bob", json={"name": "python3", "path": "../alice"})
    assert r.status_code == 400, r.text
