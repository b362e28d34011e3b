import pytest

from harness import GatewayServer

# jupyter_server's own suite (tests/compat) runs for minutes in a subprocess of its own:
# it starts beside the rest of the suite, once the browser tests (the most sensitive to a
# busy machine) are done, and its checks run last, when its result is in.
PEER_SUITE = "tests/compat/test_jupyter_server_suite.py"


def pytest_collection_modifyitems(session, config, items):
    peer = [item for item in items if item.nodeid.startswith(PEER_SUITE)]
    items[:] = [item for item in items if not item.nodeid.startswith(PEER_SUITE)] + peer
    config._eda_peer_suite = bool(peer)


def pytest_runtest_setup(item):
    if getattr(item.config, "_eda_peer_suite", False) and not item.nodeid.startswith("tests/browser/"):
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
