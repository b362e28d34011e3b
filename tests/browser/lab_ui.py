"""What the browser tests share: the user pool, screenshots, the page's clock and commands."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-results" / "screenshots"
DOC_IMAGES = ROOT / "docs" / "images"

LIMIT = 3  # executions per window: small, so a test reaches it in a few runs
USERS = [f"user{i:02d}" for i in range(1, 41)]
ADMINS = [f"admin{i}" for i in range(1, 6)]
TOKENS = {name: f"{name}-token" for name in USERS + ADMINS}

# Waits end as soon as what they wait for holds; a loaded machine (CI on 2 cores) may take
# long to draw it, and longer still to load JupyterLab's first page.
WAIT_MS = 60_000
LAB_LOAD_MS = 180_000
expect.set_options(timeout=WAIT_MS)


def new_lab_page(context):
    """A page on the fake clock, with the suite's waits."""
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.clock.install()  # before the page loads: its timers all live on the fake clock
    return page


def wait_for_lab(page) -> None:
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=LAB_LOAD_MS)


def screenshot(target, name: str, **options) -> Path:
    """Into test-results/screenshots/ (EDA_UPDATE_SCREENSHOTS=1 also copies it to docs/images/)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    target.screenshot(path=str(path), animations="disabled", **options)
    if os.environ.get("EDA_UPDATE_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        (DOC_IMAGES / name).write_bytes(path.read_bytes())
    return path


def pause_clock(page) -> None:
    """Stop the page's time (a second on): no timer fires until the test moves the clock."""
    # the page's time flows while this is sent: a target in the past is refused
    page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)


def run_command(page, command: str, args: dict | None = None) -> None:
    page.evaluate("([id, args]) => window.jupyterapp.commands.execute(id, args).then(() => true)", [command, args or {}])


def has_command(page, command: str) -> bool:
    return page.evaluate("id => window.jupyterapp.commands.hasCommand(id)", command)


def notebook_of(cells: tuple[str, ...] | list[str] = ()) -> dict:
    """A contents-API model of a Python notebook with these code cells."""
    return {
        "type": "notebook",
        "content": {
            "cells": [{"cell_type": "code", "source": code, "metadata": {}, "outputs": [], "execution_count": None}
                      for code in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
    }


def open_notebook(lab, open_lab, user: str, name: str, cells: tuple[str, ...] | list[str] = ()):
    """Save a notebook of ``cells`` as ``user`` and open it: the page, once its kernel is up."""
    r = lab.put(f"/api/contents/{name}", user, json=notebook_of(cells))
    assert r.status_code in (200, 201), r.text
    page = open_lab(user, f"/lab/tree/{name}")
    expect(page.locator(".jp-StatusBar-Widget")).to_contain_text("| Idle", timeout=90_000)
    return page


def run_cell(page, code: str) -> None:
    """Type into the last cell and Shift+Enter, as a person would."""
    editor = page.locator(".jp-Notebook .jp-Cell").last.locator(".cm-content")
    editor.click()
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")
