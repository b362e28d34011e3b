"""The REST execution API against a real server with real kernels (openapi.json)."""

from __future__ import annotations

import json
import re
import threading
import time

import psutil
import pytest
import requests

from harness import GatewayServer, until_released

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

API = "/advanced-eda/api"
EXECUTE = f"{API}/execute-custom-code"

SALES_CSV = "day,amount\n1,10\n2,20\n3,30\n"
EVENTS_JSON = json.dumps([{"kind": "click", "n": 1}, {"kind": "view", "n": 4}])


def datasets_config(folder) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sales.csv").write_text(SALES_CSV)
    (folder / "events.json").write_text(EVENTS_JSON)
    (folder / "secret.csv").write_text("x\n1\n")
    (folder / "docs").mkdir(exist_ok=True)
    (folder / "docs" / "notes.txt").write_text("notes\n")
    (folder / "broken.parquet").write_bytes(b"this is no parquet file")
    try:
        import pandas

        pandas.DataFrame({"v": [1.5, 2.5]}).to_parquet(folder / "metrics.parquet")
    except ImportError:  # no pyarrow: the parquet test skips
        (folder / "metrics.parquet").write_bytes(b"")
    return f"""
c.EDAGateway.groups = {{"analysts": ["bob"]}}
c.EDAGateway.datasets = {{
    "sales": {{"path": "{folder}/sales.csv", "users": ["alice"], "groups": ["analysts"],
               "description": "Daily sales"}},
    "events": {{"path": "{folder}/events.json", "users": ["alice"], "description": "Events"}},
    "docs": {{"path": "{folder}/docs", "users": ["alice"], "description": "A folder"}},
    "secret": {{"path": "{folder}/secret.csv", "users": ["carol"], "description": "Carol's"}},
    "metrics": {{"path": "{folder}/metrics.parquet", "users": ["bob"]}},
    "broken": {{"path": "{folder}/broken.parquet", "users": ["bob"]}},
}}
"""


def run(server, source, code, user="alice", **kw):
    return server.post(f"{EXECUTE}/{source}", user, json={"code": code}, **kw)


def ok(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.text)
    body = response.json()
    assert body["status"] == "ok", body
    return body


def stdout(body) -> str:
    return "".join(o["text"] for o in body["outputs"] if o["output_type"] == "stream" and o["name"] == "stdout")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("execapi")
    config = datasets_config(tmp / "data") + """
c.EDAGateway.max_code_bytes = 4096
c.EDAGateway.max_output_bytes = 2000
_roomy = {"max_executions_per_minute": 1000, "max_concurrent_executions": 4}
c.EDAGateway.user_limits = {"alice": _roomy, "bob": _roomy, "admin": _roomy,
                            "carol": {**_roomy, "max_kernels_per_user": 1}}
"""
    srv = GatewayServer(tmp, extra_config=config).start()
    yield srv
    srv.stop()


# --- outputs round-trip ----------------------------------------------------


def test_outputs_round_trip_as_nbformat(server):
    body = ok(run(server, "sales", "print('hello')\nimport sys; print('oops', file=sys.stderr)\n6 * 7"))
    kinds = [(o["output_type"], o.get("name")) for o in body["outputs"]]
    assert kinds == [("stream", "stdout"), ("stream", "stderr"), ("execute_result", None)]
    assert body["outputs"][0]["text"] == "hello\n"
    result = body["outputs"][2]
    assert result["data"]["text/plain"] == "42"
    assert result["execution_count"] == body["execution_count"] >= 1
    assert body["error"] is None and body["duration_seconds"] >= 0

    shown = ok(run(server, "sales", "from IPython.display import HTML, display\ndisplay(HTML('<b>x</b>'))"))
    assert shown["outputs"] == [
        {
            "output_type": "display_data",
            "data": {"text/plain": "<IPython.core.display.HTML object>", "text/html": "<b>x</b>"},
            "metadata": {},
        }
    ]
    assert shown["execution_count"] == body["execution_count"] + 1
    assert shown["kernel_id"] == body["kernel_id"]


def test_errors_come_back_as_status_error(server):
    r = run(server, "sales", "print('before')\n1/0")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "error"
    assert body["error"]["ename"] == "ZeroDivisionError"
    assert body["error"]["evalue"] == "division by zero"
    assert any("ZeroDivisionError" in line for line in body["error"]["traceback"])
    assert [o["output_type"] for o in body["outputs"]] == ["stream", "error"]
    # the kernel lives on
    assert ok(run(server, "sales", "2 + 2"))["outputs"][0]["data"]["text/plain"] == "4"


def test_clear_output_and_display_update(server):
    code = (
        "from IPython.display import display, clear_output\n"
        "print('gone'); clear_output()\n"
        "h = display('first', display_id=True)\n"
        "h.update('second')\n"
    )
    body = ok(run(server, "sales", code))
    assert [o["data"]["text/plain"] for o in body["outputs"]] == ["'second'"]


# --- the dataset in the kernel ----------------------------------------------


def test_dataset_is_preloaded(server, tmp_path_factory):
    body = ok(run(server, "sales", "import os\nprint(source_path == os.environ['EDA_SOURCE_PATH'])\nprint(source_path)"))
    lines = stdout(body).splitlines()
    assert lines[0] == "True" and lines[1].endswith("/data/sales.csv")
    total = ok(run(server, "sales", "print(type(df).__name__, int(df['amount'].sum()), list(df.columns))"))
    assert stdout(total).strip() == "DataFrame 60 ['day', 'amount']"


def test_json_dataset_gives_df_and_a_folder_only_source_path(server):
    body = ok(run(server, "events", "print(int(df['n'].sum()), sorted(df['kind']))"))
    assert stdout(body).strip() == "5 ['click', 'view']"
    folder = ok(run(server, "docs", "import os\nprint(os.listdir(source_path), 'df' in globals())"))
    assert stdout(folder).strip() == "['notes.txt'] False"


def test_parquet_dataset_gives_df(server):
    pytest.importorskip("pyarrow")
    body = ok(run(server, "metrics", "print(float(df['v'].sum()))", user="bob"))
    assert stdout(body).strip() == "4.0"


def test_unreadable_dataframe_is_reported_once(server):
    first = ok(run(server, "broken", "print(source_path.endswith('broken.parquet'), 'df' in globals())", user="bob"))
    notice = first["outputs"][0]
    assert notice["name"] == "stderr" and "df could not be loaded" in notice["text"]
    assert stdout(first).strip() == "True False"
    again = ok(run(server, "broken", "1", user="bob"))
    assert all(o["output_type"] != "stream" for o in again["outputs"])


# --- the managed kernel -------------------------------------------------------


def test_dataset_kernel_is_owned_by_the_user_and_separate_per_user(server):
    alice = ok(run(server, "sales", "secret_of_alice = 1\nimport os\nprint(os.environ['EDA_USER'])"))
    bob = ok(run(server, "sales", "import os\nprint(os.environ['EDA_USER'], 'secret_of_alice' in globals())", user="bob"))
    assert alice["kernel_id"] != bob["kernel_id"]
    assert stdout(alice).strip() == "alice"
    assert stdout(bob).strip() == "bob False"
    alice_kernels = {k["id"] for k in server.get("/api/kernels").json()}
    bob_kernels = {k["id"] for k in server.get("/api/kernels", "bob").json()}
    assert alice["kernel_id"] in alice_kernels and alice["kernel_id"] not in bob_kernels
    assert bob["kernel_id"] in bob_kernels
    # one kernel per (user, dataset)
    events = ok(run(server, "events", "1"))
    assert events["kernel_id"] != alice["kernel_id"]


def test_dataset_kernel_is_restarted_with_the_dataset_if_it_died(server):
    first = ok(run(server, "sales", "left_over = 1"))
    # The kernel kills itself (its pid may be in a namespace: never kill host pids from here).
    died = run(server, "sales", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert died.status_code == 200, died.text
    assert died.json()["status"] == "error"
    assert died.json()["error"]["ename"] in ("KernelDied", "KernelRestarted"), died.json()
    # the next request revives it (or finds it auto-restarted), with the dataset loaded again
    body = ok(run(server, "sales", "print(int(df['amount'].sum()), 'left_over' in globals())"))
    assert stdout(body).split() == ["60", "False"]
    assert body["kernel_id"] == first["kernel_id"]
    assert body["execution_count"] == 1  # a fresh process


def test_dataset_kernel_counts_against_max_kernels_per_user(server):
    kernel_id = server.start_kernel("carol")  # carol may have one kernel
    notebook = server.kernel_ws(kernel_id, "carol")  # in use: not reclaimed to make room
    try:
        r = run(server, "secret", "1", user="carol")
        assert r.status_code == 403, r.text
        assert "max_kernels_per_user" in r.json()["message"]
    finally:
        notebook.close()
        server.delete(f"/api/kernels/{kernel_id}", "carol")
    ok(run(server, "secret", "1", user="carol"))


def test_executions_on_one_dataset_kernel_are_serialized(server):
    code = "import time\nt0 = time.time(); time.sleep(0.6); print(t0, time.time())"
    results = []

    def send():
        results.append(run(server, "sales", code))

    threads = [threading.Thread(target=send) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = sorted(tuple(map(float, stdout(ok(r)).split())) for r in results)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, spans


def test_huge_output_is_cut_with_a_marker(server):
    body = ok(run(server, "sales", "print('x' * 100000)\nprint('more')"))
    assert body["truncated"] is True
    marker = body["outputs"][-1]
    assert marker["name"] == "stderr" and "output truncated" in marker["text"]
    assert len(json.dumps(body["outputs"])) < 2000 + 500
    small = ok(run(server, "sales", "print('fine')"))
    assert small["truncated"] is False and stdout(small) == "fine\n"


HOSTILE_OUTPUT = """
class Loud(Exception):
    def _render_traceback_(self):
        return ["frame %d" % i for i in range(300_000)]  # ~4 MB of traceback
from IPython.display import display
for i in range(300):
    display({"text/plain": "x" * 50}, raw=True, display_id="shared")  # one id, many outputs
h = display({"text/plain": "y"}, raw=True, display_id="shared")
for i in range(300):
    h.update({"text/plain": "z" * (i % 7)}, raw=True)
raise Loud("e" * 100_000)
"""


def test_hostile_output_is_cut_in_linear_time(server):
    """The kernel is untrusted: a 300,000-line traceback and hundreds of display updates
    (each touching hundreds of outputs) are cut to the limit without stalling the server
    (trimming the traceback a line at a time, re-serialising it each time, took hours)."""
    r = run(server, "sales", HOSTILE_OUTPUT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "error" and body["truncated"] is True
    assert body["error"]["ename"] == "Loud"
    assert body["error"]["traceback"][-1] == "frame 299999"  # the innermost frames are kept
    assert len(json.dumps(body["outputs"])) < 2 * 2000 + 500
    ok(run(server, "sales", "'still fine'"))


CHATTY_THREAD = """
import threading, time
def chatter():
    block = "x" * (4 << 20)
    for _ in range(150):          # 600 MB, published while no run reads the kernel
        print(block, flush=True)
        time.sleep(0.02)
threading.Thread(target=chatter, daemon=True).start()
"""


def test_output_between_runs_does_not_pile_up_in_the_server(server):
    """A background thread keeps printing after its cell: nothing reads the dataset
    kernel between REST runs, so ZeroMQ would queue it all in the server's memory."""
    server_process = psutil.Process(server.proc.pid)
    ok(run(server, "sales", "1", user="bob"))
    before = server_process.memory_info().rss
    ok(run(server, "sales", CHATTY_THREAD, user="bob"))
    time.sleep(6)  # the thread's 3 s of printing, and some
    grown = server_process.memory_info().rss - before
    assert grown < 200 << 20, f"the server grew by {grown >> 20} MB"
    assert "'x'" not in json.dumps(ok(run(server, "sales", "'after'", user="bob"))["outputs"])


def test_output_for_a_client_that_left_is_kept_within_bounds(server):
    """jupyter_server keeps what a kernel publishes after its websocket closed, to replay
    it: in an unbounded list. A thread printing with no tab open grew the server."""
    server_process = psutil.Process(server.proc.pid)
    kernel_id = server.start_kernel("bob")
    try:
        ws = server.kernel_ws(kernel_id, "bob")
        assert ws.run("1").reply["status"] == "ok"
        before = server_process.memory_info().rss
        ws.execute(CHATTY_THREAD)
        time.sleep(0.3)
        ws.close()  # the tab is gone; the thread prints on
        time.sleep(6)
        grown = server_process.memory_info().rss - before
        assert grown < 200 << 20, f"the server grew by {grown >> 20} MB"
    finally:
        server.delete(f"/api/kernels/{kernel_id}", "bob")


# --- who may use what -----------------------------------------------------------


def test_datasets_listing_per_user(server):
    def ids(user):
        r = server.get(f"{API}/datasets", user)
        assert r.status_code == 200
        return [d["id"] for d in r.json()["datasets"]]

    assert ids("alice") == ["docs", "events", "sales"]
    assert ids("bob") == ["broken", "metrics", "sales"]  # sales through the group analysts
    assert ids("carol") == ["secret"]
    assert ids("admin") == ["broken", "docs", "events", "metrics", "sales", "secret"]
    sales = next(d for d in server.get(f"{API}/datasets", "bob").json()["datasets"] if d["id"] == "sales")
    assert sales == {"id": "sales", "description": "Daily sales"}
    assert server.get(f"{API}/datasets", None).status_code == 403


def test_not_assigned_unknown_and_admin(server):
    r = run(server, "secret", "1", user="alice")
    assert r.status_code == 403 and r.json()["error"] == "forbidden_source"
    r = run(server, "nope", "1")
    assert r.status_code == 404 and r.json()["error"] == "unknown_source"
    assert stdout(ok(run(server, "secret", "print(int(df['x'].sum()))", user="admin"))).strip() == "1"


@pytest.mark.parametrize("source", ["..", "..%2F..%2Fetc%2Fpasswd", "sales%2F..", "a..b", ".hidden", "%2Fetc%2Fpasswd"])
def test_path_tricks_in_the_source_id_are_refused(server, source):
    r = run(server, source, "print(open('/etc/hostname').read())")
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    assert "error" in r.json()


# --- bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b"[1, 2]", b'"code"', b"{}", b'{"code": 1}', b'{"code": null}', b'{"code": "1", "extra": 2}',
     # nested past the parser's recursion limit (was a 500), and past MAX_JSON_DEPTH
     b'{"code": "1", "x": ' + b"[" * 1900 + b"]" * 1900 + b"}", b'{"code": "1", "x": ' + b"[" * 100 + b"]" * 100 + b"}"],
)
def test_bad_bodies_are_json_400(server, body):
    r = server.post(f"{EXECUTE}/sales", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["error"] and r.json()["message"]


def test_code_over_max_code_bytes_is_413(server):
    r = run(server, "sales", "x = 1\n" * 1000)  # 6000 bytes > 4096
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large" and "max_code_bytes" in r.json()["message"]
    # far over the limit: still a 413, not a reset connection or a hang
    r = server.post(f"{EXECUTE}/sales", data=b"x" * (8 * 1024 * 1024), timeout=60)
    assert r.status_code == 413
    ok(run(server, "sales", "'still fine'"))


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_json_405(server, method):
    r = server.request(method, f"{EXECUTE}/sales", json={"code": "1"})
    assert r.status_code == 405
    assert r.json()["error"] == "method_not_allowed"
    r = server.request(method if method != "GET" else "POST", f"{API}/datasets")
    assert r.status_code == 405 and r.headers["Content-Type"].startswith("application/json")


def test_no_token_is_refused(server):
    r = server.post(f"{EXECUTE}/sales", None, json={"code": "1"})
    assert r.status_code == 403
    assert r.json()["error"]


# --- one budget with notebooks -------------------------------------------------------------


@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    """Three executions an hour, one at a time."""
    tmp = tmp_path_factory.mktemp("tight")
    config = datasets_config(tmp / "data") + """
c.EDARateLimiter.max_executions_per_minute = 3
c.EDARateLimiter.window_seconds = 3600  # a slow dataset preload must not age the first admission out
c.EDARateLimiter.max_concurrent_executions = 1
c.EDAGateway.user_limits = {"admin": {"max_executions_per_minute": 1, "window_seconds": 3}}
"""
    srv = GatewayServer(tmp, extra_config=config).start()
    yield srv
    srv.stop()


def wait_for_idle_budget(srv, user, timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = srv.get(f"{API}/rate-limit-status", user).json()
        if status["concurrent_executions"] == 0 or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_rest_and_websocket_share_the_per_minute_budget(tight):
    kernel_id = tight.start_kernel("bob")
    ws = tight.kernel_ws(kernel_id, "bob")
    try:
        assert ws.run("1").reply["status"] == "ok"
        ok(run(tight, "sales", "2", user="bob"))
        assert ws.run("3").reply["status"] == "ok"
        # the budget (3) is used up: refused on both paths
        refused = run(tight, "sales", "4", user="bob")
        assert refused.status_code == 429, refused.text
        body = refused.json()
        assert body["error"] == "rate_limited" and body["reason"] == "per_minute"
        assert int(refused.headers["Retry-After"]) >= 1
        assert body["retry_after_seconds"] > 0
        assert refused.headers["RateLimit-Policy"] == '"exec";q=3;w=3600'
        refused_reset = int(re.fullmatch(r'"exec";r=0;t=(\d+)', refused.headers["RateLimit"])[1])
        over = ws.run("5")
        assert over.error["ename"] == "RateLimitExceeded"
        status = tight.get(f"{API}/rate-limit-status", "bob").json()
        assert status["executions_in_window"] == 3 and status["remaining"] == 0
        # every answer of the API tells the caller where their budget stands
        for path in ("system-stats", "datasets", "openapi.json"):
            answer = tight.get(f"{API}/{path}", "bob")
            # the same budget: nothing remaining, and the same reset, whose whole seconds
            # may only have ticked down since the refusal (a later request, a later second)
            header = answer.headers.get("RateLimit", "")
            match = re.fullmatch(r'"exec";r=0;t=(\d+)', header)
            assert match and refused_reset - 60 < int(match[1]) <= refused_reset, (path, answer.headers)
        carols = tight.get(f"{API}/datasets", "carol")  # each user's own budget
        remaining = tight.get(f"{API}/rate-limit-status", "carol").json()["remaining"]
        assert remaining > 0 and carols.headers["RateLimit"].startswith(f'"exec";r={remaining};')
        # another user is unaffected
        ok(run(tight, "secret", "1", user="carol"))
    finally:
        ws.close()


def wait_for_running(srv, user, source, timeout=30.0) -> None:
    """Until ``user``'s budget counts a running execution from ``source`` (notebook, api)."""
    deadline = time.monotonic() + timeout
    while not any(e["source"] == source
                  for e in srv.get(f"{API}/rate-limit-status", user).json()["active_executions"]):
        assert time.monotonic() < deadline, f"no {source} execution of {user} started"
        time.sleep(0.05)


def test_rest_and_websocket_share_the_concurrency_limit(tight):
    kernel_id = tight.start_kernel("alice")
    ws = tight.kernel_ws(kernel_id, "alice")
    try:
        msg_id = ws.execute(until_released("notebook-done"))  # the notebook holds the only slot
        wait_for_running(tight, "alice", "notebook")
        refused = run(tight, "events", "1")
        assert refused.status_code == 429, refused.text
        assert refused.json()["reason"] == "concurrent"
        tight.release("alice", "notebook-done")
        ws.collect(msg_id)

        busy = threading.Thread(target=run, args=(tight, "events", until_released("rest-done")))
        busy.start()  # now the REST run holds it
        wait_for_running(tight, "alice", "api")
        over = ws.run("1")
        tight.release("alice", "rest-done")
        busy.join()
        assert over.error["ename"] == "RateLimitExceeded"
        assert "concurren" in over.error["evalue"].lower()
    finally:
        ws.close()


def test_a_client_that_goes_away_does_not_leak_its_lease(tight):
    ok(run(tight, "secret", "'warm'", user="carol"))  # the kernel runs: the next request is admitted at once
    with pytest.raises(requests.exceptions.ReadTimeout):
        run(tight, "secret", "import time; time.sleep(3)", user="carol", timeout=1.0)
    status = tight.get(f"{API}/rate-limit-status", "carol").json()
    assert status["concurrent_executions"] == 1  # still running, still counted
    status = wait_for_idle_budget(tight, "carol")
    assert status["concurrent_executions"] == 0 and status["active_executions"] == []


# --- sandbox verdicts over REST ----------------------------------------------------------


@pytest.fixture(scope="module")
def confined(tmp_path_factory):
    """Small limits: 3 s per execution, 128 MB per kernel (enforcement as detected)."""
    tmp = tmp_path_factory.mktemp("confined")
    config = datasets_config(tmp / "data") + """
c.EDASandbox.max_execution_time = 3
c.EDASandbox.interrupt_grace = 2
c.EDASandbox.max_memory_mb = 128
c.EDARateLimiter.max_executions_per_minute = 100
"""
    srv = GatewayServer(tmp, extra_config=config).start()
    yield srv
    srv.stop()


@pytest.mark.sandbox
def test_busy_loop_ends_as_execution_timeout(confined):
    ok(run(confined, "sales", "warm = 1"))
    r = run(confined, "sales", "while True: pass")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "error"
    assert body["error"]["ename"] == "ExecutionTimeout", body
    assert 3 <= body["duration_seconds"] < 3 + 2 + 10
    assert body["outputs"][-1]["output_type"] == "error" and body["outputs"][-1]["ename"] == "ExecutionTimeout"
    # interrupted, not killed: the kernel and its state live on
    assert stdout(ok(run(confined, "sales", "print(warm, int(df['amount'].sum()))"))).strip() == "1 60"


@pytest.mark.sandbox
def test_loop_ignoring_sigint_is_killed_and_the_kernel_comes_back_with_the_dataset(confined):
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    body = run(confined, "events", code).json()
    assert body["status"] == "error" and body["error"]["ename"] == "ExecutionTimeout", body
    after = ok(run(confined, "events", "print(int(df['n'].sum()))"))
    assert stdout(after).strip() == "5"
    assert after["kernel_id"] == body["kernel_id"]


@pytest.mark.sandbox
def test_memory_bomb_ends_as_memory_limit_exceeded(confined):
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))"
    r = run(confined, "sales", code, user="bob")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "error"
    assert body["error"]["ename"] == "MemoryLimitExceeded", body
    assert "128" in body["error"]["evalue"]
    # restarted, with the dataset loaded again
    again = ok(run(confined, "sales", "print(int(df['amount'].sum()))", user="bob"))
    assert stdout(again).strip() == "60"
    status = confined.get(f"{API}/rate-limit-status", "bob").json()
    assert status["concurrent_executions"] == 0


@pytest.mark.sandbox
def test_a_dataset_slower_to_load_than_max_execution_time_is_still_preloaded(make_server, tmp_path):
    """The preload after each start is the server's own work, not background CPU: this file
    takes about 2 s to read at the 50% CPU cap, twice the 1 s allowed here."""
    rows = 1_000_000
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.json").write_text("[" + ",".join(f'{{"a":{i},"b":"x{i}"}}' for i in range(rows)) + "]")
    srv = make_server(f"""
c.EDASandbox.max_execution_time = 1
c.EDAGateway.datasets = {{"big": {{"path": "{data}/big.json", "users": ["alice"]}}}}
""")
    body = ok(run(srv, "big", "print(len(df))"))
    assert stdout(body).strip() == str(rows), body
    assert "BackgroundExecutionTimeout" not in srv.log()


# --- the example agent loop -------------------------------------------------------------


def test_example_agent_loop_runs_and_honours_retry_after(tight):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "llm_agent_loop", Path(__file__).parent.parent / "examples" / "llm_agent_loop.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    srv = tight  # admin there: one execution per 3 s window
    token = srv.tokens["admin"]
    first = example.execute(srv.base_url, token, "sales", "df.shape")  # starts the kernel
    assert example.render(first) == "(3, 2)\n"
    deadline = time.monotonic() + 30
    while srv.get(f"{API}/rate-limit-status", "admin").json()["remaining"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    example.execute(srv.base_url, token, "sales", "1")  # uses the one slot of the window
    started = time.monotonic()
    second = example.execute(srv.base_url, token, "sales", "print(source_path.endswith('sales.csv'))")
    assert time.monotonic() - started >= 1  # refused with 429, waited Retry-After, sent again
    assert example.render(second) == "True\n"
    failed = example.execute(srv.base_url, token, "sales", "1/0")
    assert example.render(failed) == "ZeroDivisionError: division by zero\n"
    with pytest.raises(RuntimeError, match="404 unknown_source"):
        example.execute(srv.base_url, token, "nothing", "1")


def test_the_daily_quota_refuses_over_rest_and_shows_in_the_status(make_server, tmp_path):
    """EDARateLimiter.max_executions_per_day: the third of two a day is refused, on both paths."""
    srv = make_server(datasets_config(tmp_path / "data") + "c.EDARateLimiter.max_executions_per_day = 2\n")
    ok(run(srv, "sales", "1"))
    ok(run(srv, "sales", "2"))
    refused = run(srv, "sales", "3")
    assert refused.status_code == 429, refused.text
    assert refused.headers["Content-Type"].startswith("application/json")
    body = refused.json()
    assert body["error"] == "rate_limited" and body["reason"] == "per_day"
    assert "at most 2 executions per 24 h" in body["message"]
    # the first admission leaves the quota 24 h after it was made: a moment ago
    assert 86400 - 600 < int(refused.headers["Retry-After"]) <= 86400
    assert 86400 - 600 < body["retry_after_seconds"] <= 86400
    status = srv.get(f"{API}/rate-limit-status", "alice").json()
    assert status["limits"]["max_executions_per_day"] == 2
    assert (status["daily"]["executions"], status["daily"]["remaining"]) == (2, 0)
    assert status["status"] == "limited" and status["retry_after_seconds"] > 86400 - 600
    # the kernel websocket is refused by the same quota
    ws = srv.kernel_ws(srv.start_kernel("alice"), "alice")
    try:
        over = ws.run("4")
        assert over.error["ename"] == "RateLimitExceeded"
        assert over.of_type("error")[0]["metadata"]["eda_gateway"]["reason"] == "per_day"
    finally:
        ws.close()
    # each user has their own quota
    assert srv.get(f"{API}/rate-limit-status", "bob").json()["daily"] == {
        "executions": 0, "remaining": 2, "reset_in_seconds": 0}
