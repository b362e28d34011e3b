"""system-stats vs jupyter-resource-usage, the sampler's cost, and each backend's confinement.

    .venv/bin/pip install -e ".[bench]"      # jupyter-resource-usage, the anchor
    .venv/bin/python benchmarks/stats_latency.py [--requests 60] [--idle 50]

1. Latency: ONE server runs both eda_gateway and jupyter-resource-usage; at 1, 10 and
   30 kernels, GET /advanced-eda/api/system-stats and GET /api/metrics/v1 alternate
   (admin token, so both see every kernel); p50/p95 and the ratio ours / theirs
   (target: <= 0.1 at 30 kernels, our p95 flat in the number of kernels).
2. Sampler cost: with --idle idle kernels, the server process's CPU time over 20 s
   (everything the idle server does, an upper bound for the sampler), and the
   sampler's own measuring time (eda_gateway_sampler_seconds) per 2 s tick.
3. Per backend (cgroup, psutil), 512 MiB / 50% limits: the peak the sandbox saw when a
   fast numpy allocation of 1 GiB was stopped (overshoot = peak - limit), and the CPU
   share a busy loop held over 5 s, measured from outside on the whole kernel tree.
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import GatewayServer  # noqa: E402

STATS = "/advanced-eda/api/system-stats"
JRU = "/api/metrics/v1"
MIB = 1 << 20

LATENCY_CONFIG = """
c.EDAGateway.max_kernels_per_user = 100
c.EDASandbox.max_memory_mb = 256
c.ServerApp.jpserver_extensions = {"jupyter_resource_usage": True}
c.ResourceUseDisplay.track_cpu_percent = True
"""

BACKEND_CONFIG = """
c.EDASandbox.enforcement = {enforcement!r}
c.EDASandbox.max_memory_mb = 512
c.EDASandbox.max_cpu_percent = 50
c.EDASandbox.max_execution_time = 60
"""


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def timed_get(srv, path):
    t0 = time.perf_counter()
    r = srv.get(path, "admin")
    took = (time.perf_counter() - t0) * 1000
    assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return took


def wait_kernels_in_stats(srv, n, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.get(STATS, "admin").json()["active_kernels"] >= n:
            return
        time.sleep(0.5)
    raise RuntimeError(f"system-stats never showed {n} kernels")


def wait_all_idle(srv, n, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = srv.get(STATS, "admin").json()["kernels"]
        if len(kernels) >= n and all(k["execution_state"] != "busy" for k in kernels):
            time.sleep(5)  # a started kernel keeps importing for a few seconds
            return
        time.sleep(0.5)
    raise RuntimeError("kernels never settled to idle")


def latency(requests_per_point: int) -> list[tuple]:
    rows = []
    srv = GatewayServer(Path(tempfile.mkdtemp()), extra_config=LATENCY_CONFIG).start()
    try:
        kernels = []
        for n in (1, 10, 30):
            while len(kernels) < n:
                kernels.append(srv.start_kernel("admin"))
            wait_kernels_in_stats(srv, n)
            wait_all_idle(srv, n)
            # not interleaved: resource-usage walks processes ON the event loop and
            # would delay the requests queued behind it
            ours = [timed_get(srv, STATS) for _ in range(requests_per_point)]
            theirs = [timed_get(srv, JRU) for _ in range(requests_per_point)]
            rows.append((n, pct(ours, 50), pct(ours, 95), pct(theirs, 50), pct(theirs, 95)))
            print(f"  {n:2d} kernels: system-stats p50 {rows[-1][1]:.2f} p95 {rows[-1][2]:.2f} ms | "
                  f"resource-usage p50 {rows[-1][3]:.2f} p95 {rows[-1][4]:.2f} ms", flush=True)
    finally:
        srv.stop(timeout=60)
    return rows


def sampler_cost(idle: int) -> tuple[float, float, str]:
    srv = GatewayServer(Path(tempfile.mkdtemp()), extra_config="c.EDAGateway.max_kernels_per_user = 100\n"
                        "c.EDASandbox.max_memory_mb = 256\n").start()
    try:
        for _ in range(idle):
            srv.start_kernel("admin")
        wait_kernels_in_stats(srv, idle, timeout=300)
        wait_all_idle(srv, idle, timeout=300)
        proc = psutil.Process(srv.proc.pid)
        before, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        samples = []
        while time.monotonic() - t0 < 20:
            text = srv.get("/metrics", "admin").text
            m = re.search(r"^eda_gateway_sampler_seconds ([0-9.e-]+)$", text, re.M)
            samples.append(float(m.group(1)))
            time.sleep(2)
        cpu = 100 * (sum(proc.cpu_times()[:2]) - before) / (time.monotonic() - t0)
        enforcement = srv.get(STATS, "admin").json()["enforcement"]
    finally:
        srv.stop(timeout=120)
    return cpu, statistics.median(samples), enforcement


def kernel_tree(kernel_id):
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("EDA_SANDBOX_KERNEL") == kernel_id:
                found.append(proc)
        except (psutil.Error, OSError):
            pass
    return found


def backend_figures(enforcement: str) -> tuple:
    srv = GatewayServer(Path(tempfile.mkdtemp()), extra_config=BACKEND_CONFIG.format(enforcement=enforcement)).start()
    try:
        kid = srv.start_kernel("alice")
        kc = srv.kernel_ws(kid, "alice")
        kc.run("import numpy as np")
        ex = kc.run("a = np.ones(1 << 27)  # 1 GiB of float64, touched at memset speed", timeout=120)
        kc.close()
        peak = None
        if ex.error and ex.error["ename"] == "MemoryLimitExceeded":
            m = re.search(r"peak (\d+) MiB", ex.error["evalue"])
            peak = int(m.group(1)) if m else None
        verdict = ex.error["ename"] if ex.error else "none (allocation succeeded)"
        # the kernel restarts; then a busy loop measured from outside
        deadline = time.monotonic() + 60
        while True:
            try:
                kc = srv.kernel_ws(kid, "alice")
                if kc.run("1", timeout=20).reply["status"] == "ok":
                    break
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(1)
        msg_id = kc.execute("import time\nt = time.time()\nwhile time.time() - t < 8: pass")
        time.sleep(2)
        tree = kernel_tree(kid)
        cpu = lambda: sum(sum(p.cpu_times()[:2]) for p in tree)  # noqa: E731
        before, t0 = cpu(), time.monotonic()
        time.sleep(5)
        share = 100 * (cpu() - before) / (time.monotonic() - t0)
        kc.collect(msg_id, timeout=60)
        kc.close()
        name = srv.get(STATS, "alice").json()["enforcement"]
    finally:
        srv.stop(timeout=60)
    return name, verdict, peak, share


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--idle", type=int, default=50)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: latency,cost,backends")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"machine: {platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / (1 << 30):.0f} GiB, Linux {platform.release()}, "
          f"Python {platform.python_version()}")
    if "latency" not in skip:
        print("\nsystem-stats vs jupyter-resource-usage /api/metrics/v1 (ms):")
        print("| kernels | system-stats p50 | p95 | resource-usage p50 | p95 | ratio p50 | ratio p95 |")
        print("|---|---|---|---|---|---|---|")
        for n, o50, o95, t50, t95 in latency(args.requests):
            print(f"| {n} | {o50:.2f} | {o95:.2f} | {t50:.2f} | {t95:.2f} | **{o50 / t50:.3f}** | {o95 / t95:.3f} |")
    if "cost" not in skip:
        cpu, took, enforcement = sampler_cost(args.idle)
        print(f"\nsampler with {args.idle} idle kernels ({enforcement}): server process {cpu:.2f}% of one core "
              f"over 20 s; one sample measures in {took * 1000:.1f} ms = {100 * took / 2:.2f}% of a 2 s interval")
    if "backends" not in skip:
        print("\n| backend | 1 GiB numpy allocation at 512 MiB | peak seen | overshoot | busy loop share at 50% |")
        print("|---|---|---|---|---|")
        for enforcement in ("cgroup", "psutil"):
            name, verdict, peak, share = backend_figures(enforcement)
            over = f"{peak - 512} MiB" if peak is not None else "n/a"
            print(f"| {name} | {verdict} | {peak if peak is not None else 'n/a'} MiB | {over} | {share:.1f}% |",
                  flush=True)


if __name__ == "__main__":
    main()
