"""The OpenAPI document: valid, complete, served, and true of a live server (schemathesis)."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from eda_gateway.handlers import API_PREFIX, all_handlers
from eda_gateway.handlers.execute import CATCH_ALL
from harness import GatewayServer

API = "/advanced-eda/api"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]
# Bounded: a few cases per operation and mode keep this well under a minute.
EXAMPLES = 12


def packaged_document() -> dict:
    return json.loads(resources.files("eda_gateway").joinpath("openapi.json").read_text())


def test_document_is_valid_openapi_3():
    document = packaged_document()
    validate(document)
    assert document["openapi"].startswith("3.")


def as_template(pattern: str) -> str:
    """A tornado route pattern as an OpenAPI path template."""
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern).replace("\\.", ".")


def test_every_eda_gateway_endpoint_is_documented():
    documented = set(packaged_document()["paths"])
    routes = {as_template(p) for p, _ in all_handlers() if p.startswith(API_PREFIX) and (p, _) != CATCH_ALL}
    assert routes, "no eda_gateway routes found"
    assert routes <= documented, f"undocumented: {sorted(routes - documented)}"
    for path in ("rate-limit-status", "system-stats", "execute-custom-code/{source_id}", "datasets", "openapi.json"):
        assert f"{API}/{path}" in documented


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    (tmp / "sales.csv").write_text("day,amount\n1,10\n2,20\n")
    config = f"""
c.EDAGateway.datasets = {{"sales": {{"path": "{tmp}/sales.csv", "users": ["alice", "bob"], "description": "Sales"}}}}
c.EDAGateway.max_code_bytes = 2048
c.EDASandbox.max_execution_time = 5
"""
    srv = GatewayServer(tmp, extra_config=config).start()
    yield srv
    srv.stop()


@pytest.mark.e2e
def test_served_document_is_the_packaged_one(server):
    r = server.get(f"{API}/openapi.json")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == packaged_document()


def operations(server):
    schema = schemathesis.openapi.from_url(f"{server.base_url}{API}/openapi.json", headers=server.headers("alice"))
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize(
    "user, mode",
    [("alice", GenerationMode.POSITIVE), ("alice", GenerationMode.NEGATIVE), ("admin", GenerationMode.POSITIVE)],
)
@pytest.mark.e2e
def test_live_server_keeps_the_schema(server, user, mode):
    """No 5xx, and every answer (status, content type, headers, body) is what the document says."""
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    ops = operations(server)
    assert len(ops) >= 4  # schemathesis leaves out the document's own URL
    tried = {}
    for operation in ops:
        strategy = operation.as_strategy(generation_mode=mode)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case):
            response = case.call_and_validate(
                base_url=server.base_url, headers=server.headers(user), checks=checks, timeout=60
            )
            tried.setdefault(operation.label, set()).add(response.status_code)

        check()
    # the generated requests reached the real handlers (not only refusals)
    assert any(200 in codes for codes in tried.values()), tried


@pytest.mark.e2e
def test_every_documented_execute_answer_matches_the_schema(server):
    """Each answer of the execute endpoint, provoked on purpose and validated against the document."""
    execute = next(op for op in operations(server) if op.method.upper() == "POST")

    def answer(user, source, body, media_type="application/json"):
        case = execute.Case(path_parameters={"source_id": source}, body=body, media_type=media_type)
        response = case.call(base_url=server.base_url, headers=server.headers(user), timeout=60)
        case.validate_response(response, checks=CHECKS)
        return response.status_code

    assert answer("bob", "sales", {"code": "print(1); df"}) == 200
    assert answer("bob", "sales", {"code": "raise ValueError('no')"}) == 200
    assert answer("bob", "sales", {"code": 3}) == 400
    assert answer("bob", "sales", {"code": "1", "more": 1}) == 400
    assert answer("carol", "sales", {"code": "1"}) == 403
    assert answer("bob", "nothing", {"code": "1"}) == 404
    assert answer("bob", "a..b", {"code": "1"}) == 400
    assert answer("bob", "sales", {"code": "#" * 4096}) == 413
    codes = [answer("bob", "sales", {"code": "1"}) for _ in range(12)]  # 10 a minute
    assert codes[-1] == 429, codes
