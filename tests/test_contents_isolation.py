"""Each user's contents API is rooted at their own folder; admins see all."""

import os
import shutil

import pytest
import requests

from harness import TOKENS, GatewayServer

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The default server, with a 1 MB read limit on the contents API."""
    srv = GatewayServer(tmp_path_factory.mktemp("contents"), extra_config="c.EDAContentsManager.max_read_mb = 1\n")
    yield srv.start()
    srv.stop()


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
    assert put_text(server, "bob", "note.txt", "bob's").status_code in (200, 201)  # bob's folder, whatever ran before
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


def test_files_endpoint_serves_the_callers_own_folder(server):
    """/files/ (downloads, images in notebooks) goes through the caller's folder too."""
    put_text(server, "bob", "bobs-note.txt", "bob's note")
    r = server.get("/files/secret.txt", "alice")
    assert r.status_code == 200 and r.text == "alice's secret"
    assert server.get("/files/secret.txt?download=1", "alice").headers["Content-Disposition"].startswith("attachment")
    assert server.get("/files/bobs-note.txt", "bob").text == "bob's note"
    for path in ("alice/secret.txt", "../alice/secret.txt", "%2e%2e/alice/secret.txt", "bobs-note.txt"):
        r = server.get(f"/files/{path}", "alice" if path == "bobs-note.txt" else "bob")
        assert r.status_code in (403, 404), (path, r.status_code)  # tornado says 403 to `..`
        assert "alice's secret" not in r.text and "bob's note" not in r.text
    assert server.get("/files/alice/secret.txt", "admin").text == "alice's secret"


LINKS = {  # name in bob's folder -> where it leads, below root_dir
    "link.txt": "alice/secret.txt",
    "up": "",
    ".ipynb_checkpoints": "alice",
    "dangling": "alice/made-by-bob",
}

PLANT_LINKS = """
import os, shutil
shutil.rmtree(".ipynb_checkpoints", ignore_errors=True)  # the earlier checkpoint test made it
refused = []
for name, target in {links!r}.items():
    try:
        os.symlink(target, name)
    except PermissionError:
        refused.append(name)
print(sorted(refused))
"""


def test_links_planted_by_a_kernel_lead_nowhere(server):
    """bob's kernel cannot plant links in his folder under Landlock; on hosts without it
    it can, and the server (which can read everything) must not follow them out: not for
    reading, writing, listing, /files/ or checkpoints."""
    put_text(server, "bob", "mine.txt", "bob's own")
    alice_before = sorted(p.name for p in (server.root_dir / "alice").iterdir())
    links = {name: os.path.join(str(server.root_dir), target) for name, target in LINKS.items()}
    kid = server.start_kernel("bob", name="python3", path="")
    try:
        client = server.kernel_ws(kid, "bob")
        planted = client.run(PLANT_LINKS.format(links=links))
        client.close()
        assert planted.error is None, planted.error
        isolation = server.get("/advanced-eda/api/system-stats", "bob").json()["isolation"]
        if "landlock" in isolation:
            assert planted.stdout.strip() == repr(sorted(links)), planted.stdout
        # what a kernel can do where Landlock is missing (as root: bob's kernel's view)
        bob_folder = server.root_dir / "bob"
        for name, target in links.items():
            if not os.path.islink(bob_folder / name):
                shutil.rmtree(bob_folder / name, ignore_errors=True)
                os.symlink(target, bob_folder / name)

        for path in ("link.txt", "up", "up/alice/secret.txt", "dangling"):
            r = server.get(f"/api/contents/{path}", "bob")
            assert r.status_code == 404, (path, r.status_code)
            assert r.json()["message"].endswith("is outside your folder")
            assert "alice's secret" not in r.text
            assert server.get(f"/files/{path}", "bob").status_code == 404
        assert 400 <= put_text(server, "bob", "link.txt", "pwned").status_code < 500
        assert 400 <= put_text(server, "bob", "dangling", "pwned").status_code < 500
        r = server.patch("/api/contents/mine.txt", "bob", json={"path": "up/alice/moved.txt"})
        assert 400 <= r.status_code < 500, r.text
        # checkpoints would be written into (and restored from) alice's folder
        r = server.post("/api/contents/mine.txt/checkpoints", "bob")
        assert 400 <= r.status_code < 500, r.text
        # bob's listing still works; the links are left out of it
        r = server.get("/api/contents", "bob")
        assert r.status_code == 200, r.text
        names = {item["name"] for item in r.json()["content"]}
        assert "mine.txt" in names and not names & {"link.txt", "up", "dangling"}
        # a kernel started "in" a linked folder does not land in alice's
        r = server.post("/api/kernels", "bob", json={"name": "python3", "path": "up/alice"})
        assert r.status_code == 400, r.text
    finally:
        server.delete(f"/api/kernels/{kid}", "bob")
    assert server.get("/api/contents/secret.txt", "alice").json()["content"] == "alice's secret"
    assert sorted(p.name for p in (server.root_dir / "alice").iterdir()) == alice_before


USE_WHAT_THE_API_MADE = """
import os, shutil
with open("upload.csv", "a") as f:
    f.write("3\\n")
with open("from-browser/out.txt", "w") as f:
    f.write("written by the kernel")
shutil.rmtree(".ipynb_checkpoints")
with open("from-admin.txt", "a") as f:
    f.write(" and carol")
print("ok", os.getuid())
"""


def test_what_the_api_makes_the_users_kernel_may_change(server):
    """With uid isolation, kernels run as the user's own uid: files, folders and
    checkpoints the server made for that user must belong to it, not to root."""
    put_text(server, "carol", "upload.csv", "x\n1\n")
    assert server.put("/api/contents/from-browser", "carol", json={"type": "directory"}).status_code == 201
    assert server.post("/api/contents/upload.csv/checkpoints", "carol").status_code == 201
    kid = server.start_kernel("carol", name="python3", path="")
    try:
        # an admin drops a file into carol's folder, now that it belongs to her kernel's uid
        assert put_text(server, "admin", "carol/from-admin.txt", "from the admin").status_code == 201
        client = server.kernel_ws(kid, "carol")
        ran = client.run(USE_WHAT_THE_API_MADE)
        client.close()
        assert ran.error is None, ran.error["evalue"]
        assert ran.stdout.startswith("ok")
    finally:
        server.delete(f"/api/kernels/{kid}", "carol")
    assert server.get("/api/contents/upload.csv", "carol").json()["content"] == "x\n1\n3\n"
    assert server.get("/api/contents/from-browser/out.txt", "carol").json()["content"] == "written by the kernel"
    assert server.get("/api/contents/from-admin.txt", "carol").json()["content"] == "from the admin and carol"


def test_a_huge_file_is_refused_by_the_contents_api_and_streamed_by_files(server):
    """A kernel can write a file of many GB; the contents API would read it whole into the
    shared server's memory (base64 and all). Here the limit is 1 MB (conftest)."""
    big = server.root_dir / "alice" / "big.csv"
    with open(big, "wb") as f:
        f.truncate(3_000_000)  # sparse: 3 MB on paper
    r = server.get("/api/contents/big.csv", "alice")
    assert r.status_code == 413, r.text
    assert "3 MB" in r.json()["message"] and "/files/" in r.json()["message"]
    assert server.get("/api/contents/big.csv", "alice", params={"content": "0"}).json()["size"] == 3_000_000
    assert len(server.get("/files/big.csv", "alice").content) == 3_000_000
    big.unlink()


def test_bodies_past_the_servers_cap_are_refused_before_they_fill_its_memory(server):
    """jupyter_server would take 512 MB per request (x3 while decoding): eda_gateway caps
    bodies at 100 MB; the execution API still answers its JSON 413 for any size."""
    huge = b'{"type": "file", "format": "text", "content": "' + b"y" * (101 << 20) + b'"}'
    r = server.put("/api/contents/huge.txt", "alice", data=huge, timeout=60)
    assert r.status_code == 400
    assert server.get("/api/contents/huge.txt", "alice").status_code == 404
    r = server.post("/advanced-eda/api/execute-custom-code/any", "alice", data=huge, timeout=60)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    assert server.get("/api/status", "alice").status_code == 200


NOTEBOOK = {"cells": [{"cell_type": "code", "source": "x", "metadata": {"trusted": True}, "execution_count": 1,
                       "outputs": [{"output_type": "display_data", "metadata": {},
                                    "data": {"text/html": "<script>fetch('/api/terminals', {method: 'POST'})</script>"}}]}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def trusted_cells(server, user, path):
    r = server.get(f"/api/contents/{path}", user)
    assert r.status_code == 200, r.text
    return [c["metadata"].get("trusted") for c in r.json()["content"]["cells"]]


def test_notebook_trust_is_per_user(server):
    """A notebook alice trusts must not be trusted for the admin who opens it: its
    JavaScript would run in the admin's session (and admins may open terminals)."""
    r = server.put("/api/contents/trusted.ipynb", "alice", json={"type": "notebook", "content": NOTEBOOK})
    assert r.status_code == 201, r.text
    assert server.post("/api/contents/trusted.ipynb/trust", "alice").status_code == 201
    assert trusted_cells(server, "alice", "trusted.ipynb") == [True]
    assert trusted_cells(server, "admin", "alice/trusted.ipynb") == [False]
    # the admin may trust it for themself; alice's trust is unchanged
    assert server.post("/api/contents/alice/trusted.ipynb/trust", "admin").status_code == 201
    assert trusted_cells(server, "admin", "alice/trusted.ipynb") == [True]
    assert trusted_cells(server, "alice", "trusted.ipynb") == [True]
