"""Only admins may install/remove/enable/disable JupyterLab extensions and plugins."""

import pytest

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

PLUGIN = "@jupyterlab/apputils-extension:themes"


def test_non_admin_cannot_disable_plugins_for_everyone(server):
    r = server.post("/lab/api/plugins", "bob", json={"cmd": "disable", "plugin_name": PLUGIN})
    assert r.status_code == 403, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    # reading stays open to everyone
    assert server.get("/lab/api/plugins", "bob").status_code == 200


def test_non_admin_cannot_install_extensions(server):
    r = server.post("/lab/api/extensions", "alice", json={"cmd": "install", "extension_name": "evil-ext"})
    assert r.status_code == 403, r.text
    assert server.get("/lab/api/extensions", "alice").status_code in (200, 204)


def test_admin_reaches_jupyterlabs_own_handler(server):
    # an invalid command: JupyterLab's own validation answers (422), not our guard
    r = server.post("/lab/api/plugins", "admin", json={"cmd": "explode", "plugin_name": PLUGIN})
    assert r.status_code == 422, r.text


def test_non_admin_cannot_build_or_cancel_a_build(server):
    """A build runs yarn and webpack as the server's user, outside every kernel limit."""
    for method in ("POST", "DELETE"):
        r = server.request(method, "/lab/api/build", "bob")
        assert r.status_code == 403, (method, r.text)
    assert server.get("/lab/api/build", "bob").status_code == 200  # the status stays readable
