"""The JupyterLab extension: its jest unit tests pass, and the package installs it.

The jest suite (labextension/test/*.spec.ts) tests the shared model (levels,
countdowns, refresh on execution, polling, cross-tab messages) in node, and the
widgets (status bar, Resource Monitor, EDA Runner, admin dashboard) rendered
into jsdom, with time moved by a fake clock that the model and timers share.
It runs here so the one test command (scripts/test.sh -> pytest) covers it.
"""

from __future__ import annotations

import os
import subprocess
import sys


from node_tools import BIN, EXT, need




def test_model_unit_tests_pass():
    need("node")
    jlpm = need("jlpm")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", CI="true")
    # every devDependency the tests need: a node_modules from before jsdom is stale
    if not all((EXT / "node_modules" / p).exists() for p in ("jest", "jest-environment-jsdom")):
        subprocess.run([jlpm, "install"], cwd=EXT, env=env, check=True, timeout=600)
    done = subprocess.run(
        [jlpm, "jest", "--ci", "--colors=false"], cwd=EXT, env=env, capture_output=True, text=True, timeout=300
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "failed" not in report.split("Tests:")[-1].split("\n")[0], report


def test_prebuilt_extension_is_installed_and_enabled():
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=120
    )
    listing = done.stdout + done.stderr
    line = next((x for x in listing.splitlines() if "eda-gateway" in x), "")
    assert "enabled" in line and "OK" in line, listing
    assert "(python, eda_gateway)" in line, listing
