"""How a run's outputs become MCP content (eda_gateway/agents.py), in process."""

from eda_gateway.agents import run_result
from eda_gateway.execution import RunResult

PNG = "iVBORw0KGgo=\n"  # base64 as nbformat keeps it (with a line break)


def result(outputs, status="ok", error=None, truncated=False):
    return RunResult(status, 3, outputs, error, 0.25, "k1", truncated)


def test_outputs_in_order_as_text_and_images_with_the_facts_beside():
    answer = run_result(result([
        {"output_type": "stream", "name": "stdout", "text": "hello\n"},
        {"output_type": "display_data", "data": {"image/png": PNG, "text/plain": "<Figure>"}},
        {"output_type": "execute_result", "data": {"text/plain": "   a\n0  1", "text/html": "<table/>"}},
        {"output_type": "display_data", "data": {"text/html": "<b>only html</b>"}},
    ]))
    assert [c.type for c in answer.content] == ["text", "image", "text", "text"]
    assert answer.content[1].data == "iVBORw0KGgo=" and answer.content[1].mime_type == "image/png"
    assert answer.content[2].text == "   a\n0  1" and answer.content[3].text == "<b>only html</b>"
    assert not answer.is_error
    assert answer.structured_content == {"status": "ok", "execution_count": 3, "error": None,
                                         "duration_seconds": 0.25, "kernel_id": "k1", "truncated": False}


def test_an_error_is_a_tool_error_with_its_traceback_without_colours():
    error = {"ename": "ZeroDivisionError", "evalue": "division by zero"}
    answer = run_result(result([{"output_type": "error", **error, "traceback": ["\x1b[0;31mZeroDivisionError\x1b[0m: x"]}],
                               status="error", error=error, truncated=True))
    assert answer.is_error and answer.structured_content["error"]["ename"] == "ZeroDivisionError"
    assert answer.content[0].text == "ZeroDivisionError: x"
    assert "truncated" in answer.content[-1].text


def test_a_run_without_output_says_so():
    assert run_result(result([])).content[0].text == "(no output)"
