"""The JupyterLab extension in real chromium against a real `jupyter lab`.

Each test is one fresh user on the shared server (tests/browser/conftest.py:
3 executions per 60 s, 2 concurrent), so it starts from an empty budget and
passes alone or in any order. The poll interval is 600 s in the user settings:
every update seen here comes from kernel activity, or from the page's fake
clock that the test moves (Playwright's clock), never from waiting.
Screenshots go to test-results/screenshots/ (EDA_UPDATE_SCREENSHOTS=1 also
copies them to docs/images/ for the README).
"""

from __future__ import annotations

import re

import pytest
from lab_ui import LIMIT, open_notebook, pause_clock, run_cell, run_command, screenshot
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

# A cell that stays busy until the test interrupts it (the sandbox's limit is 300 s).
BUSY = "import time; time.sleep(240)"
STATUS_REQUESTS = re.compile(r".*/advanced-eda/api/rate-limit-status.*")


@pytest.fixture
def notebook(lab, open_lab, fresh_user):
    """A fresh user's notebook, its kernel up and connected."""
    return open_notebook(lab, open_lab, fresh_user, f"{fresh_user}.ipynb")


def status_item(page: Page):
    return page.locator("[data-testid='eda-status-item']")


def shown_seconds(locator) -> int:
    """The seconds in a text like "12 s", "1 min 05 s" or "Run (wait 12 s)"."""
    found = re.search(r"(?:(\d+) min )?(\d+) s\b", locator.inner_text())
    return int(found.group(1) or 0) * 60 + int(found.group(2))


def interrupt_kernels(lab, user: str) -> None:
    for kernel in lab.get("/api/kernels", user).json():
        r = lab.post(f"/api/kernels/{kernel['id']}/interrupt", user)
        assert r.status_code == 204, r.text


def test_status_bar_shows_the_limits(notebook: Page):
    item = status_item(notebook)
    expect(item).to_contain_text(f"Exec 0/{LIMIT}")
    expect(item).to_contain_text("Running 0/2")
    expect(item).to_contain_text("Normal")  # the level as a word, not only a colour
    expect(item).to_have_attribute("data-level", "normal")
    screenshot(notebook.locator(".jp-StatusBar-Widget"), "status-bar.png")


def test_running_a_cell_updates_counts_without_waiting_for_the_poll(notebook: Page):
    expect(status_item(notebook)).to_contain_text(f"Exec 0/{LIMIT}")
    run_cell(notebook, "1+1")
    expect(notebook.locator(".jp-OutputArea-output").first).to_contain_text("2")
    # the poll interval is 600 s and the clock did not move: this comes from the kernel's busy/idle
    expect(status_item(notebook)).to_contain_text(f"Exec 1/{LIMIT}")


def test_sidebar_lists_the_active_execution_with_a_growing_duration(notebook: Page, lab, fresh_user):
    run_cell(notebook, BUSY)
    # keyboard: the status bar item is a button that opens the dashboard
    status_item(notebook).focus()
    notebook.keyboard.press("Enter")
    monitor = notebook.locator("#eda-resource-monitor")
    expect(monitor).to_be_visible()
    row = monitor.locator("[data-testid='eda-active-execution']")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("notebook")
    expect(monitor.locator("[data-testid='eda-meter-executions']")).to_contain_text(f"1 / {LIMIT}")
    expect(monitor.locator("[data-testid='eda-kernel']")).to_have_count(1)

    # it ticks locally (no poll for 600 s): 30 s on the page's clock show as 30 s more.
    # A snapshot taken after the jump would re-base the duration on the server's real
    # time (Lab's kernel poll triggers one), so status answers wait while the clock moves.
    duration = row.locator("[data-testid='eda-execution-duration']")
    before = shown_seconds(duration)
    notebook.route(STATUS_REQUESTS, lambda route: route.abort())
    notebook.clock.fast_forward("00:30")
    expect(duration).not_to_have_text(f"{before} s")
    after = shown_seconds(duration)
    notebook.unroute(STATUS_REQUESTS)
    assert after >= before + 30, (before, after)
    # the aborted answers left a "Monitoring problem": a fresh one clears it for the picture
    run_command(notebook, "eda-gateway:refresh")
    expect(monitor.locator("[data-testid='eda-error']")).to_be_empty()
    screenshot(monitor, "resource-monitor.png")

    # finished: the row goes away without a poll
    interrupt_kernels(lab, fresh_user)
    expect(row).to_have_count(0)


def test_going_over_the_limit_notifies_and_shows_the_refusal_in_the_cell(notebook: Page):
    item = status_item(notebook)
    for i in range(1, LIMIT + 1):
        run_cell(notebook, str(i))
        expect(item).to_contain_text(f"Exec {i}/{LIMIT}")
    expect(item).to_contain_text("Limited")
    expect(item).to_have_attribute("data-level", "limited")
    run_cell(notebook, "4")
    # the notebook's pre-check refuses it at once, unsent (the server's own refusal in a cell:
    # tests/browser/test_precheck.py)
    refused = notebook.locator(".jp-Notebook .jp-Cell").nth(-2)  # Shift+Enter added a new last cell
    expect(refused.locator(".jp-InputPrompt")).to_have_text("[ ]:")
    toast = notebook.locator(".Toastify__toast").filter(has_text="Execution refused")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("rate limit")
    expect(toast).to_contain_text("Not sent")

    # the countdown in the status bar follows the page's clock, between polls
    expect(item).to_contain_text(re.compile(r"Limited \(\d+ s\)"))
    pause_clock(notebook)
    wait = shown_seconds(item)
    # the jump below is 10 s: what is left must outlast it (the window is 60 s from the first cell)
    assert wait > 11, f"the window is 60 s: {wait} s left means the host took most of it"
    # a status answer during the jump would re-base the countdown on the server's real time
    # (Lab's kernel poll triggers one): status requests fail while the clock moves
    notebook.route(STATUS_REQUESTS, lambda route: route.abort())
    notebook.clock.fast_forward("00:10")
    expect(item).to_contain_text(f"Limited ({wait - 10} s)")
    notebook.unroute(STATUS_REQUESTS)
    notebook.clock.resume()

    item.click()
    monitor = notebook.locator("#eda-resource-monitor")
    expect(monitor.locator("[data-testid='eda-retry']")).to_contain_text("run again in")
    screenshot(notebook, "limited.png")  # animations finished: the toast is in place


def test_runner_panel_runs_code_on_a_dataset_and_disables_run_when_limited(lab, open_lab, fresh_user):
    page = open_lab(fresh_user)
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
    status = runner.locator("[data-testid='eda-runner-status']")
    expect(status).to_contain_text("Done in")
    compact = runner.locator("[data-testid='eda-monitor-compact']")
    expect(compact.locator("[data-testid='eda-meter-executions']")).to_contain_text(f"1 / {LIMIT}")

    # The rest of the budget goes through the API behind the page's back. With its clock
    # paused, the page asks nobody (no poll, no debounced refresh): it cannot know yet.
    pause_clock(page)
    for _ in range(LIMIT - 1):
        r = lab.post("/advanced-eda/api/execute-custom-code/demo", fresh_user, json={"code": "1"})
        assert r.status_code == 200, r.text
    expect(run).to_be_enabled()
    run.click()  # the server refuses: the page learns it from the answer
    expect(status).to_contain_text("Refused")
    expect(status).to_contain_text(re.compile(r"(retry|again) in \d+ s", re.IGNORECASE))
    expect(run).to_be_disabled()
    expect(run).to_have_text(re.compile(r"Run \(wait \d+ s\)"))
    wait = shown_seconds(run)
    # the button counts down on the page's clock, which stands still until moved
    page.clock.fast_forward("00:05")
    expect(run).to_have_text(f"Run (wait {wait - 5} s)")
    page.clock.resume()
    # the compact monitor learnt it too, from the refresh the refusal asked for
    expect(compact.locator("[data-testid='eda-badge']")).to_have_text("Limited")
    screenshot(page.locator("#eda-runner"), "eda-runner.png")

    # dark theme: our colours follow JupyterLab's theme variables
    run_command(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false")
    page.wait_for_function(
        """node => {
            const [r, g, b] = getComputedStyle(node).backgroundColor.match(/\\d+/g).map(Number);
            return r + g + b < 3 * 100;
        }""",
        arg=compact.element_handle(),
    )
    screenshot(page.locator("#eda-runner"), "eda-runner-dark.png")
