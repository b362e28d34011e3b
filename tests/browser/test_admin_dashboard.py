"""The admin dashboard in real JupyterLab, in real chromium: the admin sees every user's row.

Screenshot: test-results/screenshots/admin-dashboard.png (EDA_UPDATE_SCREENSHOTS=1 also
copies it to docs/images/ for the docs).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lab_build import checkout_labextension_env
from harness import GatewayServer

# `browser` is pytest-playwright's, launched on Debian's chromium by tests/browser/conftest.py
pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-results" / "screenshots"
SCREENSHOT = "admin-dashboard.png"  # EDA_UPDATE_SCREENSHOTS=1 copies it to docs/images/
CONFIG = """
c.EDATelemetry.interval = 0.5
c.EDAGateway.history_sample_interval = 1
"""


def screenshot(page) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / SCREENSHOT
    page.screenshot(path=str(path))
    if os.environ.get("EDA_UPDATE_SCREENSHOTS") == "1":
        (REPO / "docs" / "images").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, REPO / "docs" / "images" / SCREENSHOT)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admin_ui")
    env = checkout_labextension_env(tmp)
    srv = GatewayServer(tmp, extra_config=CONFIG, env=env).start()
    try:
        # both demo users do something: a kernel each and one execution
        for user in ("alice", "bob"):
            kid = srv.start_kernel(user)
            ws = srv.kernel_ws(kid, user)
            assert ws.run(f"'{user} was here'").result == f"'{user} was here'"
            ws.close()
        yield srv
    finally:
        srv.stop()


def open_lab(browser, server, user):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{server.base_url}/lab?token={server.tokens[user]}")
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60000)
    return page


def run_from_palette(page, label: str) -> bool:
    search = page.locator(".lm-CommandPalette-input")
    for _ in range(5):  # the shortcut is lost while Lab still moves focus around at start
        page.locator("#jp-main-dock-panel").click(position={"x": 5, "y": 5})
        page.keyboard.press("Control+Shift+C")
        try:
            search.wait_for(timeout=3000)
            break
        except Exception:
            continue
    search.wait_for(timeout=3000)
    search.fill(label)
    item = page.locator(".lm-CommandPalette-item", has_text=label)
    if item.count() == 0:
        page.keyboard.press("Escape")
        return False
    item.first.click()
    return True


def test_admin_sees_both_demo_users_and_sorts(browser, lab):
    page = open_lab(browser, lab, "admin")
    try:
        page.wait_for_selector("body[data-eda-admin=yes]", state="attached", timeout=30000)
        assert run_from_palette(page, "Open Admin Dashboard")
        for user in ("alice", "bob"):
            page.wait_for_selector(f"[data-testid=eda-admin-row][data-user={user}]", timeout=30000)
        rows = page.locator("[data-testid=eda-admin-row]")
        users = [rows.nth(i).get_attribute("data-user") for i in range(rows.count())]
        assert users == sorted(users) and {"alice", "bob"} <= set(users)
        alice = page.locator("[data-testid=eda-admin-row][data-user=alice]")
        assert alice.locator("[data-action=Interrupt]").count() == 1  # her kernel, with actions
        # sort by executions, descending, then back
        header = page.locator("th[data-key=executions] button")
        header.click()
        assert page.locator("th[data-key=executions]").get_attribute("aria-sort") == "descending"
        header.click()
        assert page.locator("th[data-key=executions]").get_attribute("aria-sort") == "ascending"
        # the charts have a line per user
        chart = page.locator("[data-testid=eda-admin-chart-executions]")
        chart.wait_for(timeout=10000)
        lines = chart.locator("path.eda-AdminChart-line")
        assert {lines.nth(i).get_attribute("data-user") for i in range(lines.count())} >= {"alice", "bob"}
        memory = page.locator("[data-testid=eda-admin-chart-memory] path.eda-AdminChart-line")
        if memory.count() < 2:  # samples are written every second: the next refresh has them
            page.get_by_role("button", name="Refresh", exact=True).click()
            page.wait_for_function(
                "() => document.querySelectorAll("
                "'[data-testid=eda-admin-chart-memory] path.eda-AdminChart-line').length >= 2",
                timeout=20000,
            )
        news = page.get_by_role("button", name="No", exact=True)
        if news.count():
            news.first.click()  # JupyterLab's "news?" toast would cover the table
            news.first.wait_for(state="detached", timeout=10000)
        assert screenshot(page).stat().st_size > 10_000
    finally:
        page.close()


def test_non_admin_has_no_admin_dashboard(browser, lab):
    page = open_lab(browser, lab, "alice")
    try:
        page.wait_for_selector("body[data-eda-admin=no]", state="attached", timeout=30000)  # asked, and refused
        assert not run_from_palette(page, "Open Admin Dashboard")
        assert page.locator("[data-testid=eda-admin-dashboard]").count() == 0
    finally:
        page.close()
