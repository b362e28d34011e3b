import pytest

from harness import GatewayServer


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
