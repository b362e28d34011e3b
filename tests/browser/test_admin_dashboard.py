"""The admin dashboard in real JupyterLab, in real chromium: an admin sees every active user's row.

Each test takes fresh users and a fresh admin on the shared server
(tests/browser/conftest.py), so it passes alone or in any order; other tests'
users may be in the table too, which is what an admin would see.
Screenshot: test-results/screenshots/admin-dashboard.png (EDA_UPDATE_SCREENSHOTS=1 also
copies it to docs/images/ for the docs).
"""

from __future__ import annotations

import pytest
from lab_ui import has_command, run_command, screenshot
from playwright.sync_api import expect

# `browser` is pytest-playwright's, launched on Debian's chromium by tests/browser/conftest.py
pytestmark = pytest.mark.browser

OPEN_ADMIN = "eda-gateway:open-admin"


def do_something(lab, user: str) -> None:
    """A kernel and one execution, as a user at work would leave behind."""
    kid = lab.start_kernel(user)
    ws = lab.kernel_ws(kid, user)
    try:
        assert ws.run(f"'{user} was here'").result == f"'{user} was here'"
    finally:
        ws.close()


def wait_for_memory_samples(page, users: list[str]) -> None:
    """Until the server's history has a memory sample for each user (it samples every second)."""
    page.wait_for_function(
        """async users => {
            const since = Math.floor(Date.now() / 1000) - 3600;
            const r = await fetch(`/advanced-eda/api/admin/history?bucket=1m&since=${since}`);
            if (!r.ok) return false;
            const sampled = new Set((await r.json()).users
                .filter(u => u.points.some(p => p.peak_memory_bytes !== null))
                .map(u => u.user));
            return users.every(u => sampled.has(u));
        }""",
        arg=users,
        polling=250,
    )


def test_admin_sees_active_users_and_sorts(lab, open_lab, fresh_admin, fresh_users):
    mine = sorted([fresh_users(), fresh_users()])
    for user in mine:
        do_something(lab, user)
    page = open_lab(fresh_admin)
    page.wait_for_selector("body[data-eda-admin=yes]", state="attached")
    wait_for_memory_samples(page, mine)  # so the first load already charts them
    run_command(page, OPEN_ADMIN)

    for user in mine:
        expect(page.locator(f"[data-testid=eda-admin-row][data-user={user}]")).to_have_count(1)
    rows = page.locator("[data-testid=eda-admin-row]")
    users = [rows.nth(i).get_attribute("data-user") for i in range(rows.count())]
    assert users == sorted(users), users
    first = page.locator(f"[data-testid=eda-admin-row][data-user={mine[0]}]")
    expect(first.locator("[data-action=Interrupt]")).to_have_count(1)  # their kernel, with actions

    # sort by executions, descending, then back
    header = page.locator("th[data-key=executions]")
    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")

    # the charts have a line per user
    for chart in ("eda-admin-chart-executions", "eda-admin-chart-memory"):
        for user in mine:
            line = page.locator(f"[data-testid={chart}] path.eda-AdminChart-line[data-user={user}]")
            expect(line).to_have_count(1)
    assert screenshot(page, "admin-dashboard.png").stat().st_size > 10_000


def test_non_admin_has_no_admin_dashboard(open_lab, fresh_user):
    page = open_lab(fresh_user)
    page.wait_for_selector("body[data-eda-admin=no]", state="attached")  # asked, and refused
    assert not has_command(page, OPEN_ADMIN)
    assert page.locator("[data-testid=eda-admin-dashboard]").count() == 0
