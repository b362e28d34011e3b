"""The messages the kernel websocket writes itself (refusals, sandbox verdicts)."""

from __future__ import annotations

from jupyter_client.session import Session

from eda_gateway.verdicts import Verdict
from eda_gateway.websocket import ending_messages, renamed


def assert_follows_the_messaging_spec(msg: dict) -> None:
    """What strict clients (nbclient, jupyter-mcp-server, ...) check of a kernel's message."""
    header = msg["header"]
    assert {"msg_id", "msg_type", "session", "username", "date", "version"} <= set(header)
    assert isinstance(msg["metadata"], dict) and isinstance(msg["parent_header"], dict)
    content = msg["content"]
    if header["msg_type"] == "status":
        assert content["execution_state"] in ("busy", "idle", "starting")
    if header["msg_type"] in ("error", "execute_reply"):
        assert isinstance(content["ename"], str) and isinstance(content["evalue"], str)
        assert isinstance(content["traceback"], list) and all(isinstance(t, str) for t in content["traceback"])
    if header["msg_type"] == "error":
        assert set(content) == {"ename", "evalue", "traceback"}  # nbformat saves no other key
    if header["msg_type"] == "execute_reply":
        assert content["status"] == "error"
        assert isinstance(content["execution_count"], int) and not isinstance(content["execution_count"], bool)


def test_ending_messages_look_like_a_kernel_ending_with_an_error():
    session = Session(key=b"k")
    request = session.msg_header("execute_request")
    msgs = ending_messages(session, request, "RateLimitExceeded", "wait 12 s",
                           details={"reason": "per_minute", "retry_after_seconds": 12.0})
    for _, m in msgs:
        assert_follows_the_messaging_spec(m)
    assert [(c, m["msg_type"]) for c, m in msgs] == [
        ("iopub", "status"),
        ("iopub", "error"),
        ("iopub", "status"),
        ("shell", "execute_reply"),
    ]
    assert [m["content"].get("execution_state") for _, m in msgs] == ["busy", None, "idle", None]
    for _, m in msgs:
        assert m["parent_header"]["msg_id"] == request["msg_id"]
    error, reply = msgs[1][1]["content"], msgs[3][1]["content"]
    assert (error["ename"], error["evalue"]) == ("RateLimitExceeded", "wait 12 s")
    assert reply["status"] == "error" and reply["ename"] == "RateLimitExceeded"
    assert len({m["header"]["msg_id"] for _, m in msgs}) == 4
    # the retry time as a number, where a client need not parse English
    for m in (msgs[1][1], msgs[3][1]):
        assert m["metadata"]["eda_gateway"] == {"verdict": "RateLimitExceeded", "reason": "per_minute",
                                                "retry_after_seconds": 12.0}


def test_renamed_turns_an_interrupt_into_the_verdict():
    verdict = Verdict("ExecutionTimeout", "ran longer than 3 s", "kid", "mid")
    reply = {"status": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": ["..."],
             "execution_count": 4}
    out = renamed(reply, verdict)
    assert (out["ename"], out["evalue"], out["execution_count"]) == ("ExecutionTimeout", "ran longer than 3 s", 4)
    assert out["traceback"] == ["ExecutionTimeout: ran longer than 3 s"]
    assert reply["ename"] == "KeyboardInterrupt"  # the original is not mutated
