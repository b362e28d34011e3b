"""Trivial-execute latency through eda_gateway vs a plain jupyter_server, and the
admission decision's own cost.

    .venv/bin/python benchmarks/execute_latency.py [--n 200]

Starts both servers in this run (same machine, same moment), runs ``1`` N times over
a kernel websocket in each protocol, alternating servers in rounds to spread noise,
and prints p50/p95 and the ratio eda_gateway / plain (target <= 0.3: TCP_NODELAY
removes Nagle's ~40 ms wait that plain jupyter_server pays on every small frame).
It also prints what the eda_gateway kernel's CPU cgroup saw during the timed
executes (cpu.stat: periods, throttled periods and time, bursts; CPU used), to tell
throttling from other costs. ``--think-ms 100`` adds a pause before each timed
execute (an analyst typing, not a loop): a separate, labelled variant.
Then: admission decision p50 in µs and bytes per user with 10,000 users.
"""

from __future__ import annotations

import argparse
import gc
import glob
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import GatewayServer  # noqa: E402

from eda_gateway.admission import AdmissionService  # noqa: E402
from eda_gateway.ledger import REPLIED  # noqa: E402
from eda_gateway.limits import LimitPolicy, Limits  # noqa: E402

V1 = "v1.kernel.websocket.jupyter.org"
PROTOCOLS = {"legacy": None, "v1": V1}

EDA_CONFIG = "c.EDARateLimiter.max_executions_per_minute = 1000000\nc.EDARateLimiter.window_seconds = 60\n"
PLAIN_CONFIG = """
c.ServerApp.jpserver_extensions = {"eda_gateway": False}
c.ServerApp.identity_provider_class = "jupyter_server.auth.identity.IdentityProvider"
c.IdentityProvider.token = "plain-token"
"""


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def cpu_cgroup(kernel_id: str) -> str | None:
    """The kernel's leaf with cpu.stat (cgroup v1 cpu hierarchy, or v2), if confined by cgroups."""
    for leaf in glob.glob(f"/sys/fs/cgroup/**/k-{kernel_id}", recursive=True):
        if os.path.exists(os.path.join(leaf, "cpu.stat")):
            return leaf
    return None


def cpu_stat(leaf: str | None) -> dict[str, int]:
    """cpu.stat counters (v1 throttled_time is ns, v2 throttled_usec is µs) + CPU used in µs."""
    if leaf is None:
        return {}
    out = {}
    for line in open(os.path.join(leaf, "cpu.stat")):
        key, value = line.split()
        out[key] = int(value)
    if "throttled_time" in out:
        out["throttled_usec"] = out.pop("throttled_time") // 1000
    acct = leaf.replace("/cpu/", "/cpuacct/", 1)
    if "usage_usec" not in out:
        for path in (os.path.join(leaf, "cpuacct.usage"), os.path.join(acct, "cpuacct.usage")):
            if os.path.exists(path):
                out["usage_usec"] = int(open(path).read()) // 1000
                break
    return out


def measure_execute(n: int, rounds: int = 4, eda_config: str = "", think_ms: float = 0.0) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="eda-bench-"))
    servers = {
        "eda_gateway": GatewayServer(tmp / "eda", extra_config=EDA_CONFIG + eda_config),
        "plain": GatewayServer(tmp / "plain", extra_config=PLAIN_CONFIG, tokens={"alice": "plain-token"}),
    }
    samples = {(s, p): [] for s in servers for p in PROTOCOLS}
    cgroup = {"leaf": None, "wall_s": 0.0}
    try:
        clients = {}
        for name, srv in servers.items():
            srv.start()
            kid = srv.start_kernel("alice")
            if name == "eda_gateway":
                cgroup["leaf"] = cpu_cgroup(kid)
            for pname, proto in PROTOCOLS.items():
                kc = srv.kernel_ws(kid, "alice", proto)
                for _ in range(10):  # warm up
                    kc.run("1")
                clients[(name, pname)] = kc
        per_round = max(1, n // rounds)
        for _ in range(rounds):
            for key, kc in clients.items():
                eda = key[0] == "eda_gateway"
                before, start = cpu_stat(cgroup["leaf"]) if eda else {}, time.monotonic()
                for _ in range(per_round):
                    if think_ms:
                        time.sleep(think_ms / 1000)
                    t0 = time.perf_counter()
                    ex = kc.run("1")
                    samples[key].append((time.perf_counter() - t0) * 1000)
                    assert ex.reply["status"] == "ok", ex.reply
                if eda and before:
                    cgroup["wall_s"] += time.monotonic() - start
                    for k, v in cpu_stat(cgroup["leaf"]).items():
                        cgroup[k] = cgroup.get(k, 0) + v - before.get(k, 0)
        for kc in clients.values():
            kc.close()
    finally:
        for srv in servers.values():
            srv.stop()
    samples["cgroup"] = cgroup
    return samples


def measure_admission(users: int = 10_000, limit: int = 10) -> dict:
    base = Limits(max_executions_per_minute=limit, window_seconds=60.0, max_concurrent_executions=2)
    policy = LimitPolicy(base, {"@fast": {"max_executions_per_minute": 30}}, {"fast": ["user1", "user2"]})
    names = [f"user{i}" for i in range(users)]

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    svc = AdmissionService(policy.for_user)
    # every user fills its window (the most memory a user can hold)
    for round_ in range(limit):
        for i, name in enumerate(names):
            svc.admit(name, f"k{i}", f"m{round_}", "notebook")
            svc.ledger.finish(f"k{i}", f"m{round_}", REPLIED)
    gc.collect()
    bytes_per_user = (tracemalloc.get_traced_memory()[0] - before) / users
    tracemalloc.stop()

    # decision cost with 10,000 users in the store: allowed (fresh service, windows
    # filling) and refused (windows full), admit alone, timed one call at a time
    timer = time.perf_counter_ns
    refused = []
    for i in range(50_000):
        name = names[i % users]
        t0 = timer()
        svc.admit(name, f"k{i % users}", f"x{i}", "notebook")
        refused.append(timer() - t0)
    fresh = AdmissionService(policy.for_user)
    for i, name in enumerate(names):
        fresh.admit(name, f"k{i}", "warm", "notebook")
        fresh.ledger.finish(f"k{i}", "warm", REPLIED)
    allowed = []
    for i in range(50_000):
        name = names[i % users]
        kid = f"k{i % users}"
        t0 = timer()
        decision = fresh.admit(name, kid, f"y{i}", "notebook")
        allowed.append(timer() - t0)
        fresh.ledger.finish(kid, f"y{i}", REPLIED)
        if not decision.allowed:
            break
    return {
        "bytes_per_user": bytes_per_user,
        "allowed_p50_us": statistics.median(allowed) / 1000,
        "refused_p50_us": statistics.median(refused) / 1000,
        "allowed_n": len(allowed),
    }


def machine() -> str:
    import os

    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="executions per server and protocol")
    parser.add_argument("--eda-config", default="", help="extra config lines for the eda_gateway server")
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause before each timed execute (variant)")
    parser.add_argument("--skip-admission", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.eda_config:
        print(f"eda_gateway extra config: {args.eda_config!r}")
    samples = measure_execute(args.n, eda_config=args.eda_config.replace("\\n", "\n"), think_ms=args.think_ms)
    mode = f"with {args.think_ms:g} ms think time before each" if args.think_ms else "back to back"
    print(f"\ntrivial execute ('1'), {mode}, {args.n} per server and protocol, round trip to reply+idle (ms):")
    print(f"{'protocol':8} {'server':12} {'p50':>8} {'p95':>8}")
    for pname in PROTOCOLS:
        for sname in ("plain", "eda_gateway"):
            v = samples[(sname, pname)]
            print(f"{pname:8} {sname:12} {pct(v, 50):8.2f} {pct(v, 95):8.2f}")
        eda, plain = samples[("eda_gateway", pname)], samples[("plain", pname)]
        print(
            f"{pname:8} ratio eda/plain: p50 {pct(eda, 50) / pct(plain, 50):.2f}, "
            f"p95 {pct(eda, 95) / pct(plain, 95):.2f}   (target <= 0.3)"
        )
    cg = samples["cgroup"]
    if cg.get("wall_s") and "nr_periods" in cg:
        used_ms = cg.get("usage_usec", 0) / 1000
        print(
            f"eda_gateway kernel cgroup during its timed executes ({cg['wall_s']:.1f} s): "
            f"{cg['nr_periods']} periods, {cg['nr_throttled']} throttled, "
            f"{cg.get('throttled_usec', 0) / 1000:.0f} ms throttled, {cg.get('nr_bursts', 0)} bursts; "
            f"CPU {used_ms:.0f} ms = {used_ms / 10 / cg['wall_s']:.0f}% of a core, "
            f"{used_ms / (2 * args.n):.2f} ms per execute"
        )
    else:
        print("eda_gateway kernel: no CPU cgroup (isolation/enforcement without cgroups)")
    if args.skip_admission:
        return
    adm = measure_admission()
    print("\nadmission with 10,000 users (limit 10, every window full for the memory figure):")
    print(f"  decision p50: allowed {adm['allowed_p50_us']:.2f} µs, refused {adm['refused_p50_us']:.2f} µs (target 10 µs)")
    print(f"  memory: {adm['bytes_per_user']:.0f} bytes per user (target 2048)")


if __name__ == "__main__":
    main()
