"""Log in at a real JupyterHub in chromium and open the eda_gateway service's JupyterLab
(examples/jupyterhub/service/): the status bar shows the logged-in user's own budget."""

from __future__ import annotations

import pytest
from lab_build import checkout_labextension_env
from lab_ui import new_lab_page, wait_for_lab
from playwright.sync_api import expect

from hub_harness import PASSWORD, Hub

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub")
    hub = Hub(tmp, "service", env=checkout_labextension_env(tmp)).start(ready_path="/services/eda/api")
    yield hub
    hub.stop()


@pytest.mark.parametrize(("user", "per_minute"), [("alice", 20), ("ada", 10)])
def test_the_status_bar_shows_the_hub_users_budget(browser, hub, user, per_minute):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = new_lab_page(context)  # nothing here waits on time
        page.goto(f"{hub.url}/hub/login")
        page.fill("input[name='username']", user)
        page.fill("input[name='password']", PASSWORD)
        page.click("input[type='submit'], button[type='submit']")
        page.wait_for_url("**/hub/home")
        page.goto(f"{hub.url}/services/eda/lab")  # the Hub's OAuth: no token in the URL
        wait_for_lab(page)
        item = page.locator("[data-testid='eda-status-item']")
        # alice's 20 a minute come from her Hub group (user_limits["@analysts"]); ada has the default
        expect(item).to_contain_text(f"Exec 0/{per_minute}")
        expect(item).to_contain_text("Normal")
    finally:
        context.close()
