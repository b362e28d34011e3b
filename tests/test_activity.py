"""The activity log through jupyter_events: schemas that validate, events routed by plain config."""

from __future__ import annotations

import json
import logging
import re

import jsonschema
import pytest
import requests
from jupyter_events import EventLogger

from eda_gateway.activity import (
    EXECUTION_SCHEMA,
    KERNEL_SCHEMA,
    LOGIN_SCHEMA,
    VERDICT_SCHEMA,
    ActivityLog,
    register_schemas,
    schema_paths,
)
from eda_gateway.ledger import ExecutionAdmitted, ExecutionFinished, ExecutionRefused, ExecutionStarted
from eda_gateway.verdicts import Verdict
from harness import GatewayServer

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

API = "/advanced-eda/api"
ALL = {EXECUTION_SCHEMA, VERDICT_SCHEMA, KERNEL_SCHEMA, LOGIN_SCHEMA}


class Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.events: list[dict] = []

    def emit(self, record):
        self.events.append(json.loads(self.format(record)))


def logger_with_capture() -> tuple[EventLogger, Captured]:
    captured = Captured()
    logger = EventLogger(handlers=[captured])
    register_schemas(logger)
    return logger, captured


def test_schemas_are_shipped_and_register():
    assert {p.parent.name for p in schema_paths()} == {"execution", "verdict", "kernel", "login"}
    logger = EventLogger()
    assert set(register_schemas(logger)) == ALL  # registering validates them against jupyter_events' metaschema
    assert set(logger.schemas.schema_ids) >= ALL


@pytest.mark.parametrize(
    "schema_id, data",
    [
        (EXECUTION_SCHEMA, {"action": "finished", "user": "a", "kernel_id": "k"}),  # not an action
        (EXECUTION_SCHEMA, {"action": "admitted", "kernel_id": "k"}),  # no user
        (EXECUTION_SCHEMA, {"action": "admitted", "user": "a", "kernel_id": "k", "token": "x"}),  # unknown field
        (VERDICT_SCHEMA, {"ename": "ExecutionTimeout", "kernel_id": "k"}),  # killed missing
        (KERNEL_SCHEMA, {"action": "exploded", "user": "a", "kernel_id": "k"}),
        (LOGIN_SCHEMA, {"user": "a", "method": "password"}),
    ],
)
def test_schemas_refuse_malformed_events(schema_id, data):
    logger = EventLogger()
    register_schemas(logger)
    with pytest.raises(jsonschema.ValidationError):
        logger.schemas.validate_event(schema_id, data)


def test_each_source_emits_a_valid_event():
    logger, captured = logger_with_capture()
    log = ActivityLog(logger, None, owner_of={"k1": "alice"}.get)
    log.on_execution(ExecutionAdmitted("alice", "k1", "m1", "notebook", 1.0))
    log.on_execution(ExecutionStarted("alice", "k1", "m1", "notebook", 1.0))  # not activity
    log.on_execution(ExecutionRefused("alice", "k1", "m2", "api", 2.0, "per_minute"))
    log.on_execution(ExecutionFinished("alice", "k1", "m1", "notebook", 3.0, "replied"))  # not activity
    log.on_verdict(Verdict("MemoryLimitExceeded", "over 512 MiB", "k1", "m3", killed=True))
    log.on_kernel_event("started", "k1", "alice")
    log.on_kernel_event("stopped", "k1", "alice")
    log.on_login("alice", "form")
    got = [(e["__schema__"], e.get("action") or e.get("ename") or e.get("method")) for e in captured.events]
    assert got == [
        (EXECUTION_SCHEMA, "admitted"),
        (EXECUTION_SCHEMA, "refused"),
        (VERDICT_SCHEMA, "MemoryLimitExceeded"),
        (KERNEL_SCHEMA, "started"),
        (KERNEL_SCHEMA, "stopped"),
        (LOGIN_SCHEMA, "form"),
    ]
    assert captured.events[1]["reason"] == "per_minute"
    assert captured.events[2]["user"] == "alice" and captured.events[2]["killed"] is True


# --- a real server routing the events to a file with ordinary config ---------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("activity")
    events_file = tmp / "events.jsonl"
    config = f"""
import logging
c.EventLogger.handlers = [logging.FileHandler({str(events_file)!r})]
c.EDAGateway.user_limits = {{"alice": {{"max_executions_per_minute": 2, "window_seconds": 3600}}}}
c.EDASandbox.max_execution_time = 2
"""
    srv = GatewayServer(tmp, extra_config=config).start()
    srv.events_file = events_file
    yield srv
    srv.stop()


def logged(server) -> list[dict]:
    lines = server.events_file.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_events_reach_the_configured_handler_and_the_history(server):
    kid = server.start_kernel("alice")
    ws = server.kernel_ws(kid, "alice")
    assert ws.run("1 + 1").result == "2"
    timed_out = ws.run("import time\ntime.sleep(30)", timeout=60)
    assert timed_out.error["ename"] == "ExecutionTimeout"
    refused = ws.run("3")  # third in the minute, limit 2
    assert refused.error["ename"] == "RateLimitExceeded"
    ws.close()

    registry = EventLogger()
    register_schemas(registry)
    events = logged(server)
    for event in events:
        if event["__schema__"] in ALL:  # jupyter_server's own events are in the file too
            data = {k: v for k, v in event.items() if not k.startswith("__")}
            registry.schemas.validate_event(event["__schema__"], data)
    mine = [e for e in events if e.get("kernel_id") == kid and e["__schema__"] in ALL]
    seen = [(e["__schema__"].split("/")[-2], e.get("action") or e.get("ename")) for e in mine]
    assert seen[0] == ("kernel", "started")
    assert seen.count(("execution", "admitted")) == 2
    assert ("verdict", "ExecutionTimeout") in seen
    refusal = [e for e in mine if e.get("action") == "refused"]
    assert len(refusal) == 1 and refusal[0]["reason"] == "per_minute" and refusal[0]["source"] == "notebook"
    logins = [e for e in events if e["__schema__"] == LOGIN_SCHEMA and e["user"] == "alice"]
    assert [e["method"] for e in logins] == ["token"]  # first request of this process only
    assert "alice-token" not in server.events_file.read_text()

    r = server.get(f"{API}/admin/events?user=alice", "admin")
    kinds = [e["kind"] for e in r.json()["events"]]
    for kind in ("login", "kernel.started", "execution.admitted", "verdict", "execution.refused"):
        assert kind in kinds
    verdict = next(e for e in r.json()["events"] if e["kind"] == "verdict")
    assert verdict["reason"] == "ExecutionTimeout" and verdict["kernel_id"] == kid


def test_login_form_is_logged(server):
    session = requests.Session()
    page = session.get(server.base_url + "/login", timeout=30)
    assert page.status_code == 200
    xsrf = session.cookies.get("_xsrf") or re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    bad = session.post(server.base_url + "/login", data={"password": "wrong", "_xsrf": xsrf},
                       allow_redirects=False, timeout=30)
    assert bad.status_code != 302
    good = session.post(server.base_url + "/login", data={"password": "bob-token", "_xsrf": xsrf},
                        allow_redirects=False, timeout=30)
    assert good.status_code == 302
    assert session.get(server.base_url + "/api/kernels", timeout=30).status_code == 200  # the cookie works
    logins = [e for e in logged(server) if e["__schema__"] == LOGIN_SCHEMA and e["user"] == "bob"]
    assert [e["method"] for e in logins] == ["form"]  # the cookie request after it is not a new login
    assert "bob-token" not in server.events_file.read_text()
