"""Where the labextension and its node tools are, for the tests that run them."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXT = ROOT / "labextension"
BIN = Path(sys.executable).parent


def need(tool: str) -> str:
    """The tool's path; a missing tool skips, or fails under EDA_STRICT=1."""
    found = shutil.which(tool, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        if os.environ.get("EDA_STRICT") == "1":
            pytest.fail(f"{tool} is missing (scripts/setup.sh installs it)")
        pytest.skip(f"{tool} is missing")
    return found
