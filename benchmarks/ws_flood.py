"""Another user's execute latency while one user floods the server with kernel websocket
handshakes past their cap (EDAGateway.max_connections_per_user), against the same latency
with no flood, same run.

    .venv/bin/python benchmarks/ws_flood.py [--n 100] [--rounds 4] [--rate 50]

One server with the default isolation and limits. alice holds her cap of websockets to her
kernel; then, in alternating rounds, bob runs ``1`` N times over his kernel websocket, with and
without a thread opening (and being refused) more of alice's websockets ``--rate`` times a
second. Prints bob's p50/p95 in ms in both cases, the ratio flood / quiet, and how many
handshakes were refused (tests/test_floods.py asserts the outcomes; this measures the cost).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import GatewayServer  # noqa: E402

CAP = 8
CONFIG = f"""
c.EDAGateway.max_connections_per_user = {CAP}
c.EDARateLimiter.max_executions_per_minute = 1000000
"""


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def timed_runs(kc, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert kc.run("1").reply["status"] == "ok"
        times.append((time.perf_counter() - t0) * 1000)
    return times


class Flood:
    """Refused handshakes at a steady rate, on a thread, for as long as the ``with`` lasts."""

    def __init__(self, srv: GatewayServer, kernel_id: str, rate: float) -> None:
        self.srv, self.kernel_id, self.pause = srv, kernel_id, 1 / rate
        self.refused = self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.srv.kernel_ws(self.kernel_id, "alice").close()
                self.accepted += 1
            except websocket.WebSocketBadStatusException:
                self.refused += 1
            self._stop.wait(self.pause)

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100, help="executions per round and case")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50, help="refused handshakes a second")
    args = parser.parse_args()
    srv = GatewayServer(Path(tempfile.mkdtemp(prefix="eda-bench-flood-")), extra_config=CONFIG).start()
    quiet, flooded, refused, accepted = [], [], 0, 0
    try:
        alice_kernel, bob_kernel = srv.start_kernel("alice"), srv.start_kernel("bob")
        held = [srv.kernel_ws(alice_kernel, "alice") for _ in range(CAP)]
        bob = srv.kernel_ws(bob_kernel, "bob")
        timed_runs(bob, 10)  # warm-up
        for _ in range(args.rounds):  # alternate: noise spreads over both cases
            quiet += timed_runs(bob, args.n)
            with Flood(srv, alice_kernel, args.rate) as flood:
                flooded += timed_runs(bob, args.n)
            refused, accepted = refused + flood.refused, accepted + flood.accepted
        for kc in [*held, bob]:
            kc.close()
    finally:
        srv.stop()
    print(f"bob's trivial execute, ms ({args.rounds} x {args.n} per case; alice holds {CAP} websockets, "
          f"flood of ~{args.rate:g} handshakes/s: {refused} refused, {accepted} accepted)")
    print("| case | p50 | p95 |\n|---|---|---|")
    for label, times in (("quiet", quiet), ("during the flood", flooded)):
        print(f"| {label} | {statistics.median(times):.2f} | {pct(times, 95):.2f} |")
    print(f"ratio flood / quiet: p50 {statistics.median(flooded) / statistics.median(quiet):.2f}, "
          f"p95 {pct(flooded, 95) / pct(quiet, 95):.2f}")


if __name__ == "__main__":
    main()
