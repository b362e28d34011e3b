"""The launcher's welcome names the user's limits (labextension/src/welcome.ts), in chromium."""

from __future__ import annotations

import pytest
from lab_ui import LIMIT
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_the_launcher_welcomes_the_user_with_their_limits(open_lab, fresh_user):
    page = open_lab(fresh_user)  # no document open: JupyterLab shows its launcher
    card = page.locator(".jp-LauncherCard", has_text="Your limits")
    expect(card).to_contain_text(f"Welcome, {fresh_user}")
    expect(card).to_contain_text(f"{LIMIT} runs per 1 min")
    expect(card).to_contain_text("2 at once")
    card.click()
    expect(page.locator("#eda-resource-monitor")).to_be_visible()
