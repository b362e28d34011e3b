"""The Resource Monitor speaks in notebooks: Run All is one row, named by the notebook, with
the cells queued behind the running one (labextension/src/monitor.ts), in real chromium."""

from __future__ import annotations

import pytest
from lab_ui import LIMIT, open_notebook, run_command
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

CELLS = 10


def test_run_all_is_one_row_named_by_the_notebook_with_its_queue(lab, open_lab, fresh_user):
    name = f"{fresh_user}-run-all.ipynb"
    cells = ["import time; time.sleep(240)"] * CELLS  # the first keeps running; the rest wait behind it
    page = open_notebook(lab, open_lab, fresh_user, name, cells)
    run_command(page, "notebook:run-all-cells")
    run_command(page, "eda-gateway:open-monitor")
    monitor = page.locator("#eda-resource-monitor")
    rows = monitor.locator("[data-testid='eda-active-execution']")
    # the budget admits LIMIT of the 10 (the rest are refused): one row, LIMIT - 1 queued
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(name)
    expect(rows.locator("[data-testid='eda-queued']")).to_have_text(f", {LIMIT - 1} queued")
    expect(rows).to_have_attribute("title", f"kernel {lab.get('/api/kernels', fresh_user).json()[0]['id']}")
    expect(monitor).to_contain_text("This server (all users)")
    for kernel in lab.get("/api/kernels", fresh_user).json():
        assert lab.post(f"/api/kernels/{kernel['id']}/interrupt", fresh_user).status_code == 204
