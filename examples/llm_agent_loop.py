"""A minimal LLM agent loop over eda_gateway's REST execution API.

    python examples/llm_agent_loop.py --url http://127.0.0.1:8888 --token alice-demo-token --source sales

Each step sends code to the caller's kernel for a dataset (where ``df`` and
``source_path`` are ready), prints the outputs, and feeds them back to the
"model". A 429 is honoured by sleeping ``Retry-After`` seconds and sending the
same code again. Replace ``next_code`` with a call to your model.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request


def execute(url: str, token: str, source: str, code: str, max_waits: int = 5) -> dict:
    """POST the code; on 429 wait Retry-After seconds and try again."""
    request = urllib.request.Request(
        f"{url}/advanced-eda/api/execute-custom-code/{source}",
        data=json.dumps({"code": code}).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    for _ in range(max_waits + 1):
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
            if error.code != 429:
                raise RuntimeError(f"{error.code} {body['error']}: {body['message']}") from None
            wait = int(error.headers.get("Retry-After", "1"))
            print(f"[rate limited ({body['reason']}): waiting {wait} s]")
            time.sleep(wait)
    raise RuntimeError("still rate limited; giving up")


def render(result: dict) -> str:
    """The outputs as text, the way a model would read them."""
    parts = []
    for output in result["outputs"]:
        kind = output["output_type"]
        if kind == "stream":
            parts.append(output["text"])
        elif kind in ("execute_result", "display_data"):
            parts.append(output["data"].get("text/plain", f"<{', '.join(output['data'])}>") + "\n")
        elif kind == "error":
            parts.append(f"{output['ename']}: {output['evalue']}\n")
    return "".join(parts)


def next_code(step: int, last_output: str | None) -> str | None:
    """Stands in for the model: a fixed plan. Return None to stop."""
    plan = [
        "print(source_path)\ndf.shape",
        "df.describe()",
        "df.head()",
    ]
    return plan[step] if step < len(plan) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8888")
    parser.add_argument("--token", required=True)
    parser.add_argument("--source", required=True, help="dataset id (GET /advanced-eda/api/datasets lists yours)")
    args = parser.parse_args()

    output = None
    for step in range(20):
        code = next_code(step, output)
        if code is None:
            break
        print(f">>> {code}")
        result = execute(args.url, args.token, args.source, code)
        output = render(result)
        print(output, end="")
        if result["status"] == "error":
            print(f"[error: {result['error']['ename']}]")


if __name__ == "__main__":
    main()
