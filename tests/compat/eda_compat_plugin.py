"""pytest plugin loaded into jupyter_server's own test suite (``-p eda_compat_plugin``).

Not a test module of this repository: ``tests/compat/jupyter_server_suite.py`` runs the
peer suite in a subprocess with this directory on ``PYTHONPATH``.

- Both modes: registers the ``flaky`` marker (upstream's tests use the ``flaky`` package,
  which is not installed here: such tests run once).
- ``EDA_COMPAT_MODE=eda_gateway``: every ServerApp the suite builds (pytest-jupyter's
  ``jp_serverapp``/``jp_configurable_serverapp`` or the tests' own) gets
  ``jpserver_extensions["eda_gateway"] = True`` (added to whatever the test enables) and
  ``EDAGateway.workspace_root``/``history_db`` under a per-test temporary folder. Identity
  stays jupyter_server's default (one token): eda_gateway's single-user mode.
  ``EDA_COMPAT_EXTRA_CONFIG`` (JSON, e.g. ``{"EDAIsolation": {"isolation": "none"}}``) adds
  config for experiments; the tier itself never sets it.
- ``EDA_COMPAT_REPORT=<prefix>``: each process (``<prefix>.main``, ``<prefix>.gw0``, ... under
  pytest-xdist) writes what happened in-process as JSON at the end: how many
  servers started, how many with eda_gateway active and in which identity mode, and the
  errors pytest-jupyter would hide (exceptions from ``initialize``, from ``ServerApp._cleanup``,
  which its ``jp_server_cleanup`` swallows, and ERROR log records).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

import pytest

MODE = os.environ.get("EDA_COMPAT_MODE", "plain")
REPORT = os.environ.get("EDA_COMPAT_REPORT")

_state: dict = {"nodeid": None, "dir": None}
_report: dict = {
    "mode": MODE,
    "servers": 0,
    "eda_gateway_active": 0,
    "identity": Counter(),
    "initialize_errors": [],
    "cleanup_errors": [],
    "error_logs": Counter(),
    "error_log_tests": {},  # the first test that logged each
}


def _first_line(text: object, limit: int = 240) -> str:
    lines = str(text).strip().splitlines()
    return (lines[0] if lines else "")[:limit]


_VARYING = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\b\d+(\.\d+)?ms\b"), "<t>ms"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<hex>"),
]


def _normalized(message: str) -> str:
    """Without the ids and timings that differ between runs, so runs can be compared."""
    for pattern, placeholder in _VARYING:
        message = pattern.sub(placeholder, message)
    return message


class _ErrorRecorder(logging.Handler):
    """Counts ERROR and CRITICAL records (the in-process server logs through ``logging``)."""

    def __init__(self):
        super().__init__(level=logging.ERROR)

    def emit(self, record):
        try:
            message = _first_line(record.getMessage(), 160)
        except Exception:  # a record whose arguments do not format
            message = _first_line(record.msg, 160)
        if record.exc_info and record.exc_info[0] is not None:
            message += f" [{record.exc_info[0].__name__}: {_first_line(record.exc_info[1], 120)}]"
        key = _normalized(f"{record.name}: {message}")
        _report["error_logs"][key] += 1
        _report["error_log_tests"].setdefault(key, _state["nodeid"])


def _eda_config(app) -> None:
    from traitlets.config import Config

    base = _state["dir"] or Path(tempfile.mkdtemp(prefix="eda_compat_"))
    workspaces = base / "workspaces"
    workspaces.mkdir(parents=True, exist_ok=True)
    extensions = dict(app.jpserver_extensions)
    extensions["eda_gateway"] = True
    config = Config(
        {
            "ServerApp": {"jpserver_extensions": extensions},
            "EDAGateway": {
                "workspace_root": str(workspaces),
                "history_db": str(base / "history.sqlite"),
            },
        }
    )
    extra = os.environ.get("EDA_COMPAT_EXTRA_CONFIG")  # for experiments: {"EDAIsolation": {...}}
    if extra:
        config.merge(Config(json.loads(extra)))
    app.update_config(config)


def _record_server(app) -> None:
    _report["servers"] += 1
    manager = getattr(app, "extension_manager", None)
    point = None
    if manager is not None and "eda_gateway" in manager.extensions:
        points = manager.extensions["eda_gateway"].extension_points
        point = next(iter(points.values()), None)
    gateway = getattr(point, "app", None) if point else None
    if gateway is not None and getattr(gateway, "active", True) and app.web_app.settings.get("eda_gateway"):
        _report["eda_gateway_active"] += 1
        identity = getattr(gateway, "identity", None)
        _report["identity"][identity.describe() if identity is not None else "(no identity mode)"] += 1


def _patch_serverapp() -> None:
    from jupyter_server.serverapp import ServerApp

    original_initialize = ServerApp.initialize
    original_cleanup = ServerApp._cleanup

    def initialize(self, *args, **kwargs):
        if MODE == "eda_gateway":
            _eda_config(self)
        try:
            result = original_initialize(self, *args, **kwargs)
        except BaseException as e:
            _report["initialize_errors"].append(f"{_state['nodeid']}: {type(e).__name__}: {_first_line(e)}")
            raise
        try:
            _record_server(self)
        except Exception as e:  # reporting must never change the outcome
            _report["initialize_errors"].append(f"{_state['nodeid']}: report failed: {e!r}")
        return result

    async def _cleanup(self, *args, **kwargs):
        try:
            return await original_cleanup(self, *args, **kwargs)
        except BaseException as e:
            _report["cleanup_errors"].append(f"{_state['nodeid']}: {type(e).__name__}: {_first_line(e)}")
            raise

    ServerApp.initialize = initialize
    ServerApp._cleanup = _cleanup


def pytest_configure(config):
    config.addinivalue_line("markers", "flaky: the flaky package's rerun marker (not installed: runs once)")
    _patch_serverapp()
    logging.getLogger().addHandler(_ErrorRecorder())


@pytest.fixture(autouse=True)
def _eda_compat_test(request, tmp_path_factory):
    _state["nodeid"] = request.node.nodeid
    _state["dir"] = tmp_path_factory.mktemp("eda_compat") if MODE == "eda_gateway" else None
    yield
    _state["dir"] = None


def pytest_sessionfinish(session):
    if not REPORT:
        return
    # under pytest-xdist each process writes its own (the runner adds them up); the
    # controller's own report counts no servers
    worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
    data = dict(_report)
    data["identity"] = dict(data["identity"])
    data["error_logs"] = dict(data["error_logs"].most_common())
    Path(f"{REPORT}.{worker}").write_text(json.dumps(data, indent=1))
