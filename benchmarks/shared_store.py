"""The shared admission store's cost: a decision in Redis on loopback, and a trivial
execute through a server on Redis against one on the in-process store, same run.

    .venv/bin/python benchmarks/shared_store.py [--n 200] [--decisions 5000]

Starts a redis-server on a free loopback port (Debian's package, scripts/setup.sh), then:

1. ``AdmissionService.admit`` p50/p95 in µs with ``RedisStore`` (one Lua script per
   decision) and with ``MemoryStore``, alternating in rounds (target: Redis p50 <= 300 µs).
2. ``1`` over a kernel websocket N times on two eda_gateway servers, one with
   ``EDARateLimiter.store_url`` and one without, alternating in rounds; the ratio of the
   p50s (target <= 1.1).
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
from redis_harness import RedisServer  # noqa: E402

from eda_gateway.admission import AdmissionService, MemoryStore  # noqa: E402
from eda_gateway.ledger import REPLIED  # noqa: E402
from eda_gateway.limits import Limits  # noqa: E402
from eda_gateway.redis_store import RedisStore  # noqa: E402

CONFIG = "c.EDARateLimiter.max_executions_per_minute = 1000000\n"


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def decisions(redis_url: str, n: int, rounds: int = 5) -> dict[str, list[float]]:
    limits = Limits(max_executions_per_minute=10_000_000, max_concurrent_executions=4)
    services = {
        "redis": AdmissionService(lambda user: limits, store=RedisStore(redis_url, prefix="bench")),
        "memory": AdmissionService(lambda user: limits, store=MemoryStore()),
    }
    timings: dict[str, list[float]] = {name: [] for name in services}
    for round_ in range(rounds):
        for name, svc in services.items():
            for i in range(n // rounds):
                user, kernel, msg = f"user{i % 50}", f"k{i % 50}", f"m{round_}-{i}"
                t0 = time.perf_counter_ns()
                decision = svc.admit(user, kernel, msg, "notebook")
                timings[name].append((time.perf_counter_ns() - t0) / 1000)
                assert decision.allowed, decision
                svc.ledger.finish(kernel, msg, REPLIED)  # releases the lease (a second call)
    return timings


def executes(redis_url: str, n: int, rounds: int = 4) -> dict[str, list[float]]:
    tmp = Path(tempfile.mkdtemp(prefix="eda-bench-store-"))
    servers = {
        "redis": GatewayServer(tmp / "redis", extra_config=CONFIG + f"c.EDARateLimiter.store_url = {redis_url!r}\n"),
        "memory": GatewayServer(tmp / "memory", extra_config=CONFIG),
    }
    timings: dict[str, list[float]] = {name: [] for name in servers}
    try:
        clients = {}
        for name, srv in servers.items():
            srv.start()
            client = srv.kernel_ws(srv.start_kernel("alice"), "alice")
            for _ in range(10):
                client.run("1")  # warm up
            clients[name] = client
        for _ in range(rounds):
            for name, client in clients.items():
                for _ in range(n // rounds):
                    t0 = time.perf_counter()
                    ex = client.run("1")
                    timings[name].append((time.perf_counter() - t0) * 1000)
                    assert ex.reply["status"] == "ok", ex.reply
        for client in clients.values():
            client.close()
    finally:
        for srv in servers.values():
            srv.stop()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="executions per server")
    parser.add_argument("--decisions", type=int, default=5000, help="admission decisions per store")
    args = parser.parse_args()
    redis_server = RedisServer(Path(tempfile.mkdtemp(prefix="eda-bench-redis-"))).start()
    try:
        timed = decisions(redis_server.url, args.decisions)
        print(f"admission decision, µs ({args.decisions} per store, alternating rounds)")
        print("| store | p50 | p95 |\n|---|---|---|")
        for name, values in timed.items():
            print(f"| {name} | {statistics.median(values):.1f} | {pct(values, 95):.1f} |")
        timed = executes(redis_server.url, args.n)
        p50 = {name: statistics.median(values) for name, values in timed.items()}
        print(f"\ntrivial execute over a kernel websocket, ms ({args.n} per server, alternating rounds)")
        print("| store | p50 | p95 |\n|---|---|---|")
        for name, values in timed.items():
            print(f"| {name} | {p50[name]:.2f} | {pct(values, 95):.2f} |")
        print(f"\nratio p50 redis / memory: {p50['redis'] / p50['memory']:.2f} (target <= 1.1)")
    finally:
        redis_server.stop()


if __name__ == "__main__":
    main()
