"""Each kernel's memory and CPU where analysts look (labextension/src/kernelusage.ts): the
notebook toolbar and JupyterLab's Running panel, in real chromium against a real `jupyter lab`.
The poll interval is 600 s in the user settings: the model is refreshed by its command, as
its next poll would (moving the page's clock by minutes would also fire JupyterLab's autosave)."""

from __future__ import annotations

import re

import pytest
from lab_ui import open_notebook, run_cell, run_command, screenshot
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# ~120 MiB, touched page by page so the kernel really holds it
ALLOCATE = "held = bytearray(120 * 1024 * 1024); held[::4096] = b'x' * len(held[::4096])"
OVER_100_MIB = re.compile(r"Mem (1\d\d|[2-9]\d\d)(\.\d)? MiB / 512 MiB")


def until_shown(page, locator, pattern, polls: int = 40) -> None:
    """Refresh the model (what its next poll does) until ``locator`` shows ``pattern``: the
    server samples memory every 0.5 s, and a refresh reads its latest sample."""
    for _ in range(polls):
        if pattern.search(locator.inner_text() or ""):
            return
        run_command(page, "eda-gateway:refresh")
        page.wait_for_timeout(250)  # the answer's way back (real time: a real request)
    expect(locator).to_have_text(pattern)


def open_running_panel(page):
    page.locator(".jp-SideBar [data-id='jp-running-sessions']").click()
    panel = page.locator("#jp-running-sessions")
    expect(panel.get_by_text("Kernel usage", exact=False)).to_be_visible()
    return panel


@pytest.fixture
def alices_notebook(lab, open_lab, fresh_user):
    name = f"{fresh_user}.ipynb"
    return fresh_user, name, open_notebook(lab, open_lab, fresh_user, name)


def test_the_toolbar_and_the_running_panel_show_the_kernels_memory_against_its_limit(alices_notebook, open_lab,
                                                                                     fresh_users, fresh_admin):
    alice, name, page = alices_notebook
    run_cell(page, ALLOCATE)
    expect(page.locator(".jp-StatusBar-Widget")).to_contain_text("| Idle", timeout=60_000)
    toolbar = page.locator(".jp-NotebookPanel-toolbar [data-testid='eda-kernel-usage']")
    until_shown(page, toolbar, OVER_100_MIB)
    expect(toolbar).to_have_attribute("title", re.compile(r"at 512 MiB the kernel is stopped \(MemoryLimitExceeded\)"))
    expect(toolbar).to_contain_text("CPU")
    screenshot(page.locator(".jp-NotebookPanel-toolbar"), "kernel-usage-toolbar.png")

    section = open_running_panel(page)
    item = section.locator(".eda-RunningUsage", has_text=name)
    expect(item).to_have_count(1)
    until_shown(page, item, re.compile(r"(1\d\d|[2-9]\d\d)(\.\d)? MiB / 512 MiB"))
    screenshot(section, "kernel-usage-running.png")

    # bob's Running panel lists his kernels, not alice's
    bob_page = open_lab(fresh_users())
    bob_section = open_running_panel(bob_page)
    expect(bob_section.locator(".eda-RunningUsage", has_text=name)).to_have_count(0)

    # an admin's lists every user's kernels, with the owner's name
    admin_page = open_lab(fresh_admin)
    admin_section = open_running_panel(admin_page)
    expect(admin_section.locator(".eda-RunningUsage", has_text=f"{alice}: {name}")).to_have_count(1)
