"""The JupyterLab extension in real chromium against a real `jupyter lab`.

One server with small limits (3 executions per 600 s window, 2 concurrent) serves
alice (notebook side) and bob (EDA Runner side), so their budgets do not mix.
Tests of one user build on each other in file order: counts only go up inside
the 600 s window (with 60 s, a slow first run aged out on a loaded CI host).
The poll interval is set to 600 s in the user settings, so every update seen
here comes from kernel activity, not from polling.
Screenshots go to test-results/screenshots/ (EDA_UPDATE_SCREENSHOTS=1 also
copies them to docs/images/ for the README).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from harness import TOKENS, GatewayServer
from lab_build import checkout_labextension_env

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-results" / "screenshots"
DOC_IMAGES = ROOT / "docs" / "images"
LIMIT = 3

EXTRA_CONFIG = """
c.EDARateLimiter.max_executions_per_minute = {limit}
c.EDARateLimiter.window_seconds = 600  # counts only go up while the module runs, however slow the host
c.EDARateLimiter.max_concurrent_executions = 2
c.EDASandbox.max_execution_time = 30
c.EDASandbox.max_memory_mb = 512
c.EDAGateway.datasets = {{"demo": {{"path": {csv!r}, "users": ["bob"], "description": "Three rows of demo sales"}}}}
c.LabApp.user_settings_dir = {settings!r}
c.LabApp.workspaces_dir = {workspaces!r}
"""


def screenshot(target, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    target.screenshot(path=str(path))
    if os.environ.get("EDA_UPDATE_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOC_IMAGES / name)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    csv = tmp / "demo.csv"
    csv.write_text("day,sales\n1,10\n2,20\n3,30\n")
    settings = tmp / "lab-settings"
    for user in TOKENS:  # JupyterLab settings are per user: <user_settings_dir>/<user_id>/
        mine = settings / user
        (mine / "eda-gateway").mkdir(parents=True)
        # 600 s: an update within the test's waits cannot come from the poll
        (mine / "eda-gateway" / "model.jupyterlab-settings").write_text(json.dumps({"refreshInterval": 600}))
        # no "get Jupyter news?" toast over the screenshots
        (mine / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
        (mine / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false"})
        )
    env = checkout_labextension_env(tmp)
    srv = GatewayServer(
        tmp,
        env=env,
        extra_config=EXTRA_CONFIG.format(
            limit=LIMIT, csv=str(csv), settings=str(settings), workspaces=str(tmp / "lab-workspaces")
        ),
        command=[sys.executable, "-m", "jupyterlab"],
    )
    srv.start(timeout=120)
    yield srv
    srv.stop()


def open_lab(browser, lab: GatewayServer, user: str, path: str = "/lab") -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{lab.base_url}{path}?token={TOKENS[user]}")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    return page


@pytest.fixture(scope="module")
def alice(browser, lab):
    notebook = {
        "type": "notebook",
        "content": {
            "cells": [],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
    }
    r = lab.put("/api/contents/monitor.ipynb", "alice", json=notebook)
    assert r.status_code in (200, 201), r.text
    page = open_lab(browser, lab, "alice", "/lab/tree/monitor.ipynb")
    # the kernel is up and connected when the status bar says so
    expect(page.locator(".jp-StatusBar-Widget")).to_contain_text("| Idle", timeout=90_000)
    yield page
    page.context.close()


def status_item(page: Page):
    return page.locator("[data-testid='eda-status-item']")


def run_cell(page: Page, code: str) -> None:
    """Type into the last cell and Shift+Enter, as a person would."""
    editor = page.locator(".jp-Notebook .jp-Cell").last.locator(".cm-content")
    editor.click()
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")


def test_status_bar_shows_the_limits(alice: Page):
    item = status_item(alice)
    expect(item).to_contain_text(f"Exec 0/{LIMIT}")
    expect(item).to_contain_text("Running 0/2")
    expect(item).to_contain_text("Normal")  # the level as a word, not only a colour
    expect(item).to_have_attribute("data-level", "normal")
    screenshot(alice.locator(".jp-StatusBar-Widget"), "status-bar.png")


def test_running_a_cell_updates_counts_without_waiting_for_the_poll(alice: Page):
    run_cell(alice, "1+1")
    expect(alice.locator(".jp-OutputArea-output").first).to_contain_text("2")
    # poll interval is 600 s: this comes from the kernel's busy/idle
    expect(status_item(alice)).to_contain_text(f"Exec 1/{LIMIT}", timeout=10_000)


def test_sidebar_lists_the_active_execution_with_a_growing_duration(alice: Page):
    run_cell(alice, "import time; time.sleep(15)")
    # keyboard: the status bar item is a button that opens the dashboard
    status_item(alice).focus()
    alice.keyboard.press("Enter")
    monitor = alice.locator("#eda-resource-monitor")
    expect(monitor).to_be_visible()
    row = monitor.locator("[data-testid='eda-active-execution']")
    expect(row).to_have_count(1, timeout=10_000)
    expect(row).to_contain_text("notebook")
    duration = row.locator("[data-testid='eda-execution-duration']")

    def seconds() -> int:
        return int(re.match(r"(\d+) s", duration.inner_text()).group(1))

    # it ticks live (no poll for 600 s): wait for 3 more seconds to show, however slow the host
    samples = [(round(time.monotonic(), 2), seconds())]
    while samples[-1][1] < samples[0][1] + 3 and samples[-1][0] - samples[0][0] < 10:
        time.sleep(0.5)
        samples.append((round(time.monotonic(), 2), seconds()))
    assert samples[-1][1] >= samples[0][1] + 3, f"the duration should keep ticking: {samples}"
    expect(monitor.locator("[data-testid='eda-meter-executions']")).to_contain_text(f"2 / {LIMIT}")
    expect(monitor.locator("[data-testid='eda-kernel']")).to_have_count(1)
    expect(monitor.locator("[data-testid='eda-kernel']")).to_contain_text("busy")
    screenshot(monitor, "resource-monitor.png")
    # finished: the row goes away without a poll
    expect(row).to_have_count(0, timeout=20_000)


def test_going_over_the_limit_notifies_and_shows_the_refusal_in_the_cell(alice: Page):
    run_cell(alice, "3")
    expect(status_item(alice)).to_contain_text(f"Exec {LIMIT}/{LIMIT}", timeout=10_000)
    expect(status_item(alice)).to_contain_text("Limited")
    expect(status_item(alice)).to_have_attribute("data-level", "limited")
    run_cell(alice, "4")
    refused = alice.locator(".jp-Notebook .jp-Cell").nth(-2)  # Shift+Enter added a new last cell
    expect(refused.locator(".jp-OutputArea-output")).to_contain_text("RateLimitExceeded", timeout=10_000)
    toast = alice.locator(".Toastify__toast").filter(has_text="Execution refused")
    expect(toast).to_be_visible(timeout=10_000)
    expect(toast).to_contain_text("rate limit")
    monitor = alice.locator("#eda-resource-monitor")
    expect(monitor.locator("[data-testid='eda-retry']")).to_contain_text("run again in")
    alice.wait_for_timeout(1000)  # let the toast finish sliding in for the picture
    screenshot(alice, "limited.png")


def test_runner_panel_runs_code_on_a_dataset_and_disables_run_when_limited(browser, lab):
    page = open_lab(browser, lab, "bob")
    try:
        status_item(page).click()
        page.locator("#eda-resource-monitor").get_by_role("button", name="Open EDA Runner").click()
        runner = page.locator("[data-testid='eda-runner']")
        expect(runner).to_be_visible()
        expect(runner.locator("[data-testid='eda-runner-dataset'] option")).to_have_count(1)
        expect(runner).to_contain_text("Three rows of demo sales")
        editor = runner.locator("[data-testid='eda-runner-editor'] .cm-content")
        editor.click()
        page.keyboard.press("Control+a")
        page.keyboard.type("print(df.shape, df['sales'].sum())")
        run = runner.locator("[data-testid='eda-runner-run']")
        run.click()
        expect(runner.locator("[data-testid='eda-runner-outputs']")).to_contain_text("(3, 2) 60", timeout=60_000)
        expect(runner.locator("[data-testid='eda-runner-status']")).to_contain_text("Done in")
        compact = runner.locator("[data-testid='eda-monitor-compact']")
        expect(compact.locator("[data-testid='eda-meter-executions']")).to_contain_text(f"1 / {LIMIT}")

        # The rest of bob's budget goes through the API behind the page's back. The page
        # must not learn it before the click (as if its status request were slow): it does
        # look again whenever JupyterLab's kernel list changes, and the runs change it.
        status_requests = re.compile(r".*/advanced-eda/api/rate-limit-status.*")
        page.route(status_requests, lambda route: route.abort())
        for _ in range(LIMIT - 1):
            r = lab.post("/advanced-eda/api/execute-custom-code/demo", "bob", json={"code": "1"})
            assert r.status_code == 200, r.text
        expect(run).to_be_enabled()  # the page does not know yet
        run.click()
        page.unroute(status_requests)  # the refusal makes it look again, and now it may
        status = runner.locator("[data-testid='eda-runner-status']")
        expect(status).to_contain_text("Refused", timeout=10_000)
        expect(status).to_contain_text(re.compile(r"(retry|again) in \d+ s", re.IGNORECASE))
        expect(run).to_be_disabled()
        expect(run).to_have_text(re.compile(r"Run \(wait \d+ s\)"))
        # the compact monitor learnt it too
        expect(compact.locator("[data-testid='eda-badge']")).to_have_text("Limited", timeout=10_000)
        screenshot(page.locator("#eda-runner"), "eda-runner.png")

        # dark theme: our colours follow JupyterLab's theme variables
        page.keyboard.press("Control+Shift+c")
        page.keyboard.type("Use Theme: JupyterLab Dark")
        page.keyboard.press("Enter")
        expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false", timeout=20_000)
        page.wait_for_timeout(500)
        background = compact.evaluate("node => getComputedStyle(node).backgroundColor")
        red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
        assert red + green + blue < 3 * 100, f"monitor background {background} should be dark"
        screenshot(page.locator("#eda-runner"), "eda-runner-dark.png")
    finally:
        page.context.close()
