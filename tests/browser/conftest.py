"""Playwright against Debian's chromium (never Playwright's own browser downloads).

One JupyterLab server serves every browser test, with a pool of users: each
test takes users nobody used before (`fresh_user`, `fresh_admin`), so no test
depends on another's executions and any order, or any one test alone, passes.
Every page gets Playwright's fake clock (installed before the page loads, so
time flows until a test moves or pauses it): countdowns and durations are
checked by moving that clock, not by waiting.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/harness.py

from harness import GatewayServer  # noqa: E402
from lab_build import checkout_labextension_env  # noqa: E402
from lab_ui import ADMINS, LIMIT, TOKENS, USERS, new_lab_page, wait_for_lab  # noqa: E402

CHROMIUM = os.environ.get("EDA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STRICT = os.environ.get("EDA_STRICT") == "1"


CONFIG = """
c.EDAGateway.admin_users = {admins!r}
c.EDARateLimiter.max_executions_per_minute = {limit}
c.EDARateLimiter.window_seconds = 60
c.EDARateLimiter.max_concurrent_executions = 2
c.EDASandbox.max_execution_time = 300  # tests interrupt their long cells themselves
c.EDASandbox.max_memory_mb = 512
c.EDATelemetry.interval = 0.5
c.EDAGateway.history_sample_interval = 1
c.EDAGateway.datasets = {{"demo": {{"path": {csv!r}, "users": {users!r}, "description": "Three rows of demo sales"}}}}
c.LabApp.user_settings_dir = {settings!r}
c.LabApp.workspaces_dir = {workspaces!r}
c.LabApp.expose_app_in_browser = True  # window.jupyterapp: run commands without the palette's focus games
"""


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh does)"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_FLAGS, "headless": True}


def write_user_settings(settings: Path, user: str) -> None:
    """JupyterLab settings are per user: <user_settings_dir>/<user_id>/."""
    mine = settings / user
    (mine / "eda-gateway").mkdir(parents=True)
    # 600 s: an update a test sees comes from kernel activity or from a clock the test moved
    (mine / "eda-gateway" / "model.jupyterlab-settings").write_text(json.dumps({"refreshInterval": 600}))
    # no "get Jupyter news?" toast over the screenshots
    (mine / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (mine / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false"})
    )


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    csv = tmp / "demo.csv"
    csv.write_text("day,sales\n1,10\n2,20\n3,30\n")
    settings = tmp / "lab-settings"
    for user in TOKENS:
        write_user_settings(settings, user)
    srv = GatewayServer(
        tmp,
        tokens=TOKENS,
        env=checkout_labextension_env(tmp),
        extra_config=CONFIG.format(
            admins=set(ADMINS),
            limit=LIMIT,
            csv=str(csv),
            users=USERS,
            settings=str(settings),
            workspaces=str(tmp / "lab-workspaces"),
        ),
        command=[sys.executable, "-m", "jupyterlab"],
    )
    srv.start(timeout=120)
    yield srv
    srv.stop()


_unused_users = iter(USERS)
_unused_admins = iter(ADMINS)


def _take(pool, kind: str) -> str:
    name = next(pool, None)
    if name is None:
        pytest.fail(f"no unused {kind} left: add more to tests/browser/conftest.py")
    return name


@pytest.fixture
def fresh_user():
    """A user no other test has used: an empty budget, no kernels, no history."""
    return _take(_unused_users, "user")


@pytest.fixture
def fresh_users():
    """Call for as many unused users as a test needs."""
    return lambda: _take(_unused_users, "user")


@pytest.fixture
def fresh_admin():
    return _take(_unused_admins, "admin")


@pytest.fixture
def open_lab(browser, lab):
    """open_lab(user, path="/lab"): a page of its own (own cookies, own tabs) on the fake clock."""
    contexts = []

    def open_page(user: str, path: str = "/lab"):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(context)
        page = new_lab_page(context)
        page.goto(f"{lab.base_url}{path}?token={lab.tokens[user]}")
        wait_for_lab(page)
        return page

    yield open_page
    for context in contexts:
        context.close()
