"""Kernel start: launch to first kernel_info_reply, eda_gateway's default isolation vs none vs plain.

    .venv/bin/python benchmarks/kernel_start.py [--n 10]

Four servers in one run (eda_gateway with its default isolation, with Landlock alone
(the private /proc path), with ``EDASandbox.isolation = "none"``, and a plain jupyter_server with the extension off);
starts alternate between them. One sample: ``POST /api/kernels``, open the kernel
websocket, send ``kernel_info_request``, until its reply; then the kernel is deleted.
Prints p50/p95 per server and the ratios to ``none`` and to plain.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import GatewayServer, new_message  # noqa: E402

TOKEN = "benchmark-token-0123456789"
SERVERS = {
    "eda_gateway (default isolation)": "",
    "eda_gateway (landlock alone)": "c.EDASandbox.isolation = 'landlock'\n",
    "eda_gateway (isolation none)": "c.EDASandbox.isolation = 'none'\n",
    "plain jupyter_server": "c.ServerApp.jpserver_extensions = {'eda_gateway': False}\n",
}


def one_start(srv: GatewayServer) -> float:
    started = time.perf_counter()
    kid = srv.start_kernel()
    kc = srv.kernel_ws(kid)
    try:
        msg = new_message("kernel_info_request", {}, kc.session)
        kc.send(msg)
        while True:
            reply = kc.recv(120)
            if reply.get("parent_header", {}).get("msg_id") == msg["header"]["msg_id"] and (
                reply.get("msg_type") or reply["header"]["msg_type"]
            ) == "kernel_info_reply":
                break
        return time.perf_counter() - started
    finally:
        kc.close()
        srv.delete(f"/api/kernels/{kid}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="eda-bench-start-"))
    servers = {name: GatewayServer(tmp / str(i), extra_config=cfg, single_token=TOKEN).start()
               for i, (name, cfg) in enumerate(SERVERS.items())}
    samples: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for name, srv in servers.items():
            one_start(srv)  # warm-up: imports and page cache
        for _ in range(args.n):
            for name, srv in servers.items():
                samples[name].append(one_start(srv))
    finally:
        for srv in servers.values():
            srv.stop()
    none_p50 = statistics.median(samples["eda_gateway (isolation none)"])
    plain_p50 = statistics.median(samples["plain jupyter_server"])
    print(f"kernel start to first kernel_info_reply, n={args.n} per server, seconds")
    print("| server | p50 | p95 | p50 / isolation none | p50 / plain |")
    print("|---|---|---|---|---|")
    for name, values in samples.items():
        p50 = statistics.median(values)
        print(f"| {name} | {p50:.3f} | {percentile(values, 0.95):.3f} | {p50 / none_p50:.2f} | {p50 / plain_p50:.2f} |")


if __name__ == "__main__":
    main()
