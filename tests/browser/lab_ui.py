"""What the browser tests share: the user pool, screenshots, the page's clock and commands."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-results" / "screenshots"
DOC_IMAGES = ROOT / "docs" / "images"

LIMIT = 3  # executions per window: small, so a test reaches it in a few runs
USERS = [f"user{i:02d}" for i in range(1, 41)]
ADMINS = [f"admin{i}" for i in range(1, 6)]
TOKENS = {name: f"{name}-token" for name in USERS + ADMINS}


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
