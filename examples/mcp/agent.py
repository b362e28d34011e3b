"""An agent's side of eda_gateway's MCP endpoint, with the official `mcp` SDK (docs/agents.md).

    python examples/mcp/agent.py --url http://127.0.0.1:8888 --token alice-demo-token --dataset sales

Lists the tools and datasets, runs code on a dataset, and honours a budget refusal by
waiting the `retry_after_seconds` the tool error carries before sending the same code again.
Replace ``CODE`` with what your model writes.
"""

from __future__ import annotations

import argparse

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

CODE = "df.describe()"


async def run_code(session: ClientSession, dataset: str, code: str, max_waits: int = 3):
    """``run_code``; a refusal of the budget is waited out (its retry time is a number)."""
    for _ in range(max_waits + 1):
        result = await session.call_tool("run_code", {"dataset": dataset, "code": code})
        facts = result.structured_content or {}
        if result.is_error and facts.get("error") in ("RateLimitExceeded", "AdmissionUnavailable"):
            await anyio.sleep(float(facts["retry_after_seconds"]))
            continue
        return result
    return result


async def main(url: str, token: str, dataset: str, code: str) -> None:
    async with create_mcp_http_client(headers={"Authorization": f"token {token}"}) as http, \
            streamable_http_client(f"{url}/advanced-eda/mcp", http_client=http) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            print("tools:", ", ".join(tool.name for tool in (await session.list_tools()).tools))
            datasets = (await session.call_tool("list_datasets", {})).structured_content["datasets"]
            print("datasets:", ", ".join(d["id"] for d in datasets))
            result = await run_code(session, dataset, code)
            for block in result.content:
                print(block.text if block.type == "text" else f"[{block.type} {getattr(block, 'mime_type', '')}]")
            print("facts:", result.structured_content)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8888")
    parser.add_argument("--token", required=True)
    parser.add_argument("--dataset", default="sales")
    parser.add_argument("--code", default=CODE)
    args = parser.parse_args()
    anyio.run(main, args.url, args.token, args.dataset, args.code)
