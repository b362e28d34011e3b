"""JupyterLab settings and workspaces are per user on a real server with the LabApp loaded.

jupyterlab_server alone keeps one settings folder and one workspaces folder for
everybody; eda_gateway.handlers.lab must answer these URLs instead of it.
"""

from __future__ import annotations

import json
import stat
import sys

import pytest

from harness import GatewayServer

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

THEMES = "@jupyterlab/apputils-extension:themes"
SETTINGS = "/lab/api/settings/" + THEMES
SETTINGS_FILE = ("@jupyterlab", "apputils-extension", "themes.jupyterlab-settings")
WORKSPACE = "/lab/api/workspaces/default"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    srv = GatewayServer(
        tmp,
        extra_config=(
            f"c.LabApp.user_settings_dir = {str(tmp / 'user-settings')!r}\n"
            f"c.LabApp.workspaces_dir = {str(tmp / 'lab-workspaces')!r}\n"
        ),
    ).start()
    srv.settings_root = tmp / "user-settings"
    srv.workspaces_root = tmp / "lab-workspaces"
    yield srv
    srv.stop()


def theme_of(srv, user: str) -> str:
    response = srv.get(SETTINGS, user)
    assert response.status_code == 200, response.text
    body = response.json()  # "settings" holds the user's values; the default is in the schema
    return body["settings"].get("theme", body["schema"]["properties"]["theme"]["default"])


def workspace(name: str, opened: str) -> dict:
    return {"data": {"layout-restorer:data": {"main": {"current": f"notebook:{opened}"}}}, "metadata": {"id": name}}


def test_a_theme_change_is_only_the_callers(lab):
    # the LabApp is loaded, so its server-wide handlers exist on the same URLs: ours must come first
    assert lab.get("/lab", "alice").status_code == 200
    default = theme_of(lab, "bob")
    chosen = "JupyterLab Dark" if default != "JupyterLab Dark" else "JupyterLab Light"

    response = lab.put(SETTINGS, "alice", json={"raw": json.dumps({"theme": chosen})})
    assert response.status_code == 204, response.text

    assert theme_of(lab, "alice") == chosen
    assert theme_of(lab, "bob") == default
    assert theme_of(lab, "admin") == default  # admins are users: alice's choice is not theirs either
    listing = lab.get("/lab/api/settings/", "bob").json()["settings"]
    bobs_themes = next(s for s in listing if s["id"] == THEMES)
    assert "theme" not in bobs_themes["settings"]


def test_settings_land_in_private_per_user_folders(lab):
    for user in ("alice", "bob"):
        lab.put(SETTINGS, user, json={"raw": json.dumps({"theme": "JupyterLab Light"})}).raise_for_status()
    for user in ("alice", "bob"):
        folder = lab.settings_root / user
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert folder.joinpath(*SETTINGS_FILE).is_file()
    assert not lab.settings_root.joinpath(*SETTINGS_FILE).exists()  # nothing server-wide


def test_bob_can_neither_read_nor_overwrite_alices_workspace(lab):
    alices = workspace("default", "alice-secret-design.ipynb")
    assert lab.put(WORKSPACE, "alice", json=alices).status_code == 204

    seen_by_bob = lab.get(WORKSPACE, "bob")
    assert seen_by_bob.status_code == 200
    assert "alice-secret-design" not in seen_by_bob.text
    assert seen_by_bob.json()["data"] == {}
    assert "alice-secret-design" not in lab.get("/lab/api/workspaces/", "bob").text

    assert lab.put(WORKSPACE, "bob", json=workspace("default", "bob.ipynb")).status_code == 204
    assert lab.delete(WORKSPACE, "bob").status_code == 204

    kept = lab.get(WORKSPACE, "alice").json()
    assert kept["data"] == alices["data"]
    ids = lab.get("/lab/api/workspaces", "alice").json()["workspaces"]["ids"]
    assert ids == ["default"]
    files = list((lab.workspaces_root / "alice").glob("*.jupyterlab-workspace"))
    assert len(files) == 1
    assert stat.S_IMODE((lab.workspaces_root / "alice").stat().st_mode) == 0o700
    assert not list(lab.workspaces_root.glob("*.jupyterlab-workspace"))  # nothing server-wide


@pytest.mark.parametrize(
    "path",
    [
        "/lab/api/workspaces/..%2Falice%2Fdefault",
        "/lab/api/workspaces/%2E%2E",
        "/lab/api/workspaces/a%2Fb",
        "/lab/api/workspaces/.hidden",
        "/lab/api/workspaces/default%00",
    ],
)
def test_path_tricks_in_workspace_names_are_refused(lab, path):
    for method in ("get", "put", "delete"):
        kwargs = {"json": workspace("x", "x.ipynb")} if method == "put" else {}
        response = getattr(lab, method)(path, "bob", **kwargs)
        assert response.status_code == 400, (method, path, response.status_code, response.text)
        assert "invalid workspace name" in response.json()["message"]


@pytest.mark.parametrize(
    "schema_name",
    ["..%2F..%2Falice%2F%40jupyterlab%2Fapputils-extension:themes", "%40jupyterlab%2F..:themes", "a:.."],
)
def test_path_tricks_in_settings_ids_are_refused(lab, schema_name):
    path = "/lab/api/settings/" + schema_name
    assert lab.get(path, "bob").status_code == 400
    response = lab.put(path, "bob", json={"raw": "{}"})
    assert response.status_code == 400
    assert "invalid settings id" in response.json()["message"]


DEEP = "[" * 3000 + "]" * 3000  # past Python's parser recursion limit: was a 500


@pytest.mark.parametrize("body", ["not json", "[]", "{}", '{"data": {}, "metadata": []}', '{"data": {}, "metadata": {"id": "other"}}',
                                  '{"data": ' + DEEP + ', "metadata": {"id": "x"}}'])
def test_malformed_workspaces_are_a_400_and_change_nothing(lab, body):
    before = lab.get(WORKSPACE, "carol").json()
    response = lab.put(WORKSPACE, "carol", data=body)
    assert response.status_code == 400, response.text
    assert lab.get(WORKSPACE, "carol").json() == before


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"raw": 5}', b'{"raw": "{ not json5"}', b'{"raw": "{\\"theme\\": 5}"}', b"\xff",
                                  ('{"raw": "' + DEEP + '", "x": ' + DEEP + "}").encode(), ('{"raw": "' + DEEP + '"}').encode()])
def test_malformed_settings_are_a_400_and_change_nothing(lab, body):
    before = lab.get(SETTINGS, "carol").json()["raw"]
    response = lab.put(SETTINGS, "carol", data=body)
    assert response.status_code == 400, response.text
    assert lab.get(SETTINGS, "carol").json()["raw"] == before


def test_huge_settings_and_workspaces_are_a_413_and_change_nothing(lab):
    """Settings are parsed by pure-Python json5 on the event loop at every read: a valid
    settings file of 50 MB (one long comment) would stall the server for everyone."""
    before = lab.get(SETTINGS, "carol").json()["raw"]
    comment = json.dumps({"raw": "{ /* " + "x" * (2 << 20) + " */ }"})
    response = lab.put(SETTINGS, "carol", data=comment)
    assert response.status_code == 413, response.text
    assert lab.get(SETTINGS, "carol").json()["raw"] == before
    before = lab.get(WORKSPACE, "carol").json()
    space = {"data": {"pad": "x" * (2 << 20)}, "metadata": {"id": WORKSPACE.rsplit("/", 1)[-1]}}
    assert lab.put(WORKSPACE, "carol", data=json.dumps(space)).status_code == 413
    assert lab.get(WORKSPACE, "carol").json() == before


@pytest.mark.parametrize("path", [SETTINGS, WORKSPACE, "/lab/api/translations/"])
def test_anonymous_callers_are_refused(lab, path):
    assert lab.get(path, None).status_code == 403


def test_without_jupyterlab_server_no_lab_routes_are_registered(monkeypatch):
    """Headless installs (no lab extra): the module is skipped, everything else still registers."""
    from eda_gateway.handlers import all_handlers

    with_lab = [pattern for pattern, *_ in all_handlers()]
    assert "/lab/api/settings/?" in with_lab
    monkeypatch.setitem(sys.modules, "jupyterlab_server", None)  # find_spec() -> None, import fails
    without_lab = [pattern for pattern, *_ in all_handlers()]
    assert not [p for p in without_lab if p.startswith("/lab/")]
    assert without_lab == [p for p in with_lab if not p.startswith("/lab/")]
