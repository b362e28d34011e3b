"""The notebook pre-check (labextension/src/precheck.ts) in real chromium: while the budget is
spent a cell is refused at once, without a request, and runs are sent again as soon as the
window frees on the page's clock (Playwright's clock), without a reload."""

from __future__ import annotations

import re

import pytest
from lab_ui import LIMIT, open_notebook, run_cell
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

STATUS_REQUESTS = re.compile(r".*/advanced-eda/api/rate-limit-status.*")


def test_a_spent_budget_refuses_a_cell_at_once_and_frees_with_the_window(lab, open_lab, fresh_user):
    page = open_notebook(lab, open_lab, fresh_user, f"{fresh_user}-precheck.ipynb")
    for i in range(LIMIT):
        run_cell(page, f"{i} + 100")
        expect(page.locator(".jp-OutputArea-output").nth(i)).to_contain_text(str(i + 100))
    status = page.locator("[data-testid='eda-status-item']")
    expect(status).to_have_attribute("data-level", "limited")

    run_cell(page, "'not sent'")
    toast = page.locator(".Toastify__toast").filter(has_text="Not sent: your execution budget is spent")
    expect(toast).to_be_visible()
    refused = page.locator(".jp-Notebook .jp-CodeCell").nth(LIMIT)
    expect(refused.locator(".jp-InputPrompt")).to_have_text("[ ]:")  # never queued, never run
    # no request reached the server: its count of refusals for this user is still 0
    users = {u["user"]: u for u in lab.get("/advanced-eda/api/admin/users", "admin1").json()["users"]}
    assert sum(users[fresh_user]["refusals"].values()) == 0, users[fresh_user]
    assert lab.get("/advanced-eda/api/rate-limit-status", fresh_user).json()["executions_in_window"] == LIMIT

    # the window frees (on the page's clock): the next cell is sent again, without a reload.
    # Status answers fail meanwhile: the server's window (real time) is still full, and its
    # answer would put the page back to "limited"; so the server refuses this one itself.
    page.route(STATUS_REQUESTS, lambda route: route.abort())
    page.clock.fast_forward("01:05")
    expect(status).not_to_have_attribute("title", re.compile("Run again in"))  # the wait is over
    run_cell(page, "'sent'")
    sent = page.locator(".jp-Notebook .jp-CodeCell").nth(LIMIT + 1)
    expect(sent.locator(".jp-OutputArea-output")).to_contain_text("RateLimitExceeded")
    page.unroute(STATUS_REQUESTS)
