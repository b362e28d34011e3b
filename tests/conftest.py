"""Tiers, the order of the suite, and the servers tests share.

Tiers (``scripts/test.sh unit|e2e|browser|compat``): a test is ``e2e`` when it starts real
server processes (harness.GatewayServer: mark its module or itself ``e2e``, or it fails
with a message saying so), ``browser`` under tests/browser/, ``compat`` under tests/compat/;
every other test is a unit test: in-process, no ports of its own, no kernels of its own.
In-process servers come from pytest-jupyter (``jp_serverapp``, ``jp_fetch``), with
eda_gateway enabled for the users of ``harness.TOKENS`` (``jp_server_config`` below).
"""

import logging

import pytest

import harness
from harness import GatewayServer, eda_config

pytest_plugins = ("pytest_jupyter.jupyter_server",)

from jupyter_core.utils import ensure_event_loop  # noqa: E402

# jupyter_server's own suite (tests/compat) runs for minutes in a subprocess of its own:
# it starts beside the rest of the suite, once the browser tests (the most sensitive to a
# busy machine) are done, and its checks run last, when its result is in.
PEER_SUITE = "tests/compat/test_jupyter_server_suite.py"

# Under pytest-xdist (scripts/test.sh: four workers, ``--dist loadgroup``) a module is one
# unit of work, and these run one after another on one worker: memory and latency
# measurements, the browsers and the peer suite (without xdist the marks do nothing).
SENSITIVE = "sensitive"
SENSITIVE_PATHS = (
    "tests/browser/",
    "tests/compat/",
    "tests/test_floods.py",
    "tests/test_http_limits.py",
    "tests/test_sandbox.py",
)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the xdist_group marks
def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if item.nodeid.startswith("tests/browser/"):
            item.add_marker(pytest.mark.browser)
        if item.nodeid.startswith("tests/compat/"):
            item.add_marker(pytest.mark.compat)
        if item.nodeid.startswith(SENSITIVE_PATHS):
            item.add_marker(pytest.mark.xdist_group(SENSITIVE))
        else:  # a module is one unit of work: its shared server starts once, its tests in order
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    # The browser tests come last but for the peer suite's checks: Playwright's sync API keeps
    # an event loop running in this thread until the session ends, and an in-process test
    # after it (pytest-jupyter's fixtures, asyncio.run) would find that loop already running.
    peer = [item for item in items if item.nodeid.startswith(PEER_SUITE)]
    browser = [item for item in items if item.nodeid.startswith("tests/browser/")]
    rest = [item for item in items if not item.nodeid.startswith((PEER_SUITE, "tests/browser/"))]
    items[:] = rest + browser + peer


def pytest_collection_finish(session):
    # after -m/-k deselection: the peer run starts only if its checks will run
    session.config._eda_peer_suite = any(item.nodeid.startswith(PEER_SUITE) for item in session.items)


def _starts_servers(item) -> bool:
    return any(item.get_closest_marker(tier) for tier in ("e2e", "browser", "compat"))


def _starts_peer_suite(item) -> bool:
    """The peer run lives in the process that checks its result: under xdist, the one worker
    that runs the SENSITIVE group (the peer checks are in it); it starts once that worker is
    past the browser tests. Every worker collects the whole suite, so the others must not."""
    if item.nodeid.startswith("tests/browser/"):
        return False
    if not hasattr(item.config, "workerinput"):  # no xdist: the first test (not a browser's)
        return True
    group = item.get_closest_marker("xdist_group")
    return group is not None and group.args == (SENSITIVE,)


def pytest_sessionfinish(session, exitstatus):
    harness.stop_servers_left_running()  # with their clean-up: a failed fixture skipped it


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # before the item's fixtures: a module-scoped server starts within its first test's setup
    harness.allow_servers(_starts_servers(item), item.nodeid)
    if getattr(item.config, "_eda_peer_suite", False) and _starts_peer_suite(item):
        import jupyter_server_suite

        jupyter_server_suite.start_in_background("eda_gateway")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A shared server with the default limits and users alice, bob, carol, admin."""
    srv = GatewayServer(tmp_path_factory.mktemp("srv")).start()
    yield srv
    srv.stop()


@pytest.fixture
def make_server(tmp_path):
    """Start servers with extra config; all are stopped at the end of the test."""
    started = []

    def make(extra_config: str = "", **kwargs) -> GatewayServer:
        srv = GatewayServer(tmp_path / f"srv{len(started)}", extra_config=extra_config, **kwargs)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()


# --- in process (pytest-jupyter) ------------------------------------------------------


@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    """pytest-jupyter's autouse loop fixture, except that it leaves alone a loop another
    plugin is running: Playwright's sync API runs one for the whole session, and closing
    it failed the teardown of every test after the browser tests."""
    loop = ensure_event_loop(prefer_selector_loop=True)
    yield loop
    if not loop.is_running():
        loop.close()


@pytest.fixture(autouse=True)
def jp_server_cleanup(jp_asyncio_loop):
    """pytest-jupyter's autouse clean-up of the in-process server, only after a test that made
    one: it made a blank ServerApp after every other test too, and after the browser tests
    (Playwright's loop running) could not clean that up, a RuntimeWarning each time."""
    yield
    from jupyter_server.serverapp import ServerApp

    if not ServerApp.initialized():
        return
    app = ServerApp.instance()
    try:
        jp_asyncio_loop.run_until_complete(app._cleanup())
    except (RuntimeError, SystemExit) as e:
        print("ignoring cleanup error", e)  # noqa: T201
    if hasattr(app, "kernel_manager"):
        app.kernel_manager.context.destroy()
    ServerApp.clear_instance()  # cleaned up: the next test has none to clean


@pytest.fixture
def jp_server_config(tmp_path):
    return eda_config(tmp_path)


@pytest.fixture
def refused_start(jp_configurable_serverapp, tmp_path, caplog, capsys):
    """Start an in-process server that must refuse its config; return what it said
    (the exit message and the log), which must name the bad setting."""

    def start(extra: dict) -> str:
        with pytest.raises(SystemExit) as exit_info:
            jp_configurable_serverapp(config=eda_config(tmp_path, extra))
        assert exit_info.value.code not in (None, 0)
        # errors only: the debug log echoes the whole config, bad setting included
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        # traitlets reports a bad trait on the app's own stderr handler
        errors += [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[D ")]
        return "\n".join([str(exit_info.value.code), *errors])

    return start
