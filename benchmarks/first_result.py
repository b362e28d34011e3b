"""Time to first result of a run on a dataset: new (the user has not run on it yet) and
warm (run again), with and without the warm start, same run, over REST and over MCP.

    .venv/bin/python benchmarks/first_result.py [--users 6]

Two servers with the default isolation and limits, one with ``EDAGateway.warm_start =
False``. Each of ``--users`` fresh users lists the datasets (as an agent does first), then
runs ``len(df)`` on a dataset new to them and again on the same one. The MCP variant goes
through ``/advanced-eda/mcp`` with the SDK's client (``list_datasets``, then ``run_code``).
Prints p50 per case in ms (target: new dataset with the warm start <= 500 ms).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import GatewayServer  # noqa: E402

USERS_CONFIG = "c.EDARateLimiter.max_executions_per_minute = 1000\n"
ROWS = 50_000


def datasets(folder: Path, users: list[str]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sales.csv", "w") as f:
        f.write("day,amount\n")
        f.writelines(f"{i},{i % 97}\n" for i in range(ROWS))
    return f'c.EDAGateway.datasets = {{"sales": {{"path": "{folder}/sales.csv", "users": {users!r}}}}}\n'


def rest_case(srv: GatewayServer, user: str, pause: float) -> tuple[float, float]:
    assert srv.get("/advanced-eda/api/datasets", user).status_code == 200
    time.sleep(pause)  # what an agent takes to read the list and write its first code
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        r = srv.post("/advanced-eda/api/execute-custom-code/sales", user, json={"code": "len(df)"})
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    return times[0], times[1]


def mcp_case(srv: GatewayServer, user: str, pause: float) -> tuple[float, float]:
    import anyio
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def session():
        async with create_mcp_http_client(headers={"Authorization": f"token {srv.tokens[user]}"}) as client, \
                streamable_http_client(f"{srv.base_url}/advanced-eda/mcp", http_client=client) as streams:
            async with ClientSession(streams[0], streams[1]) as mcp:
                await mcp.initialize()
                await mcp.call_tool("list_datasets", {})
                await anyio.sleep(pause)
                times = []
                for _ in range(2):
                    t0 = time.perf_counter()
                    result = await mcp.call_tool("run_code", {"dataset": "sales", "code": "len(df)"})
                    times.append((time.perf_counter() - t0) * 1000)
                    assert not result.is_error, result
                return times[0], times[1]

    return anyio.run(session)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=6, help="fresh users per server and path")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between listing and the first run")
    args = parser.parse_args()
    names = [f"user{i}" for i in range(4 * args.users)]
    tokens = {name: f"{name}-token-0123456789" for name in names} | {"admin": "admin-token-0123456789"}
    tmp = Path(tempfile.mkdtemp(prefix="eda-bench-first-"))
    config = USERS_CONFIG + datasets(tmp / "data", names)
    servers = {
        "warm start": GatewayServer(tmp / "warm", tokens=tokens, extra_config=config),
        "no warm start": GatewayServer(tmp / "cold", tokens=tokens, extra_config=config + "c.EDAGateway.warm_start = False\n"),
    }
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for srv in servers.values():
            srv.start()
        users = iter(names)
        for _ in range(args.users):  # alternate servers and paths: noise spreads over all cases
            for label, srv in servers.items():
                for path, case in (("REST", rest_case), ("MCP", mcp_case)):
                    results.setdefault((label, path), []).append(case(srv, next(users), args.pause))
    finally:
        for srv in servers.values():
            srv.stop()
    print(f"time to first result, ms (p50 of {args.users} fresh users each; {ROWS:,}-row CSV; "
          f"{args.pause:g} s between listing and running)")
    print("| server | path | new dataset | warm (run again) |\n|---|---|---|---|")
    for (label, path), pairs in results.items():
        print(f"| {label} | {path} | {statistics.median(p[0] for p in pairs):.0f} | "
              f"{statistics.median(p[1] for p in pairs):.0f} |")


if __name__ == "__main__":
    main()
