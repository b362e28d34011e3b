"""Prometheus metrics on jupyter_server's own ``/metrics`` (prometheus_client's default registry).

Gauges are refreshed from each telemetry snapshot; counters follow admission
and verdict events as they happen.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from .ledger import ExecutionAdmitted, ExecutionEvent, ExecutionRefused

USER_MEMORY = Gauge("eda_gateway_user_memory_bytes", "Memory used by a user's kernels", ["user"])
USER_CPU = Gauge("eda_gateway_user_cpu_percent", "CPU used by a user's kernels, % of one core", ["user"])
USER_KERNELS = Gauge("eda_gateway_user_kernels", "Kernels a user has running", ["user"])
ADMITTED = Counter("eda_gateway_executions_admitted", "Executions admitted", ["source"])
REFUSED = Counter("eda_gateway_executions_refused", "Executions refused, by reason", ["reason"])
VERDICTS = Counter("eda_gateway_verdicts", "Sandbox and rate-limit verdicts, by kind", ["kind"])
ENFORCEMENT = Gauge("eda_gateway_enforcement", "Enforcement backend in use (1 for the active one)", ["backend"])
AUTH_FAILURES = Counter("eda_gateway_auth_failures", "Wrong tokens and logins, by kind", ["kind"])
AUTH_THROTTLED = Counter("eda_gateway_auth_throttled", "Authentications refused (429) during backoff", ["kind"])
ADMISSION_STORE_UP = Gauge(
    "eda_gateway_admission_store_up", "1 while the shared admission store (EDARateLimiter.store_url) answers"
)
ADMISSION_STORE_FAILURES = Counter(
    "eda_gateway_admission_store_failures", "Times the shared admission store became unreachable"
)
SAMPLE_SECONDS = Gauge("eda_gateway_sampler_seconds", "Time the last telemetry sample took to measure")


def on_snapshot(snapshot) -> None:
    per_user: dict[str, list] = {}
    for kernel in snapshot.kernels:
        totals = per_user.setdefault(kernel.user, [0, 0.0, 0])
        totals[0] += kernel.memory_bytes
        totals[1] += kernel.cpu_percent
        totals[2] += 1
    for gauge in (USER_MEMORY, USER_CPU, USER_KERNELS):
        gauge.clear()  # users without kernels disappear
    for user, (memory, cpu, count) in per_user.items():
        USER_MEMORY.labels(user).set(memory)
        USER_CPU.labels(user).set(cpu)
        USER_KERNELS.labels(user).set(count)
    SAMPLE_SECONDS.set(snapshot.duration_seconds)


def on_execution(event: ExecutionEvent) -> None:
    """Execution bus observer."""
    if isinstance(event, ExecutionAdmitted):
        ADMITTED.labels(event.source or "unknown").inc()
    elif isinstance(event, ExecutionRefused):
        REFUSED.labels(event.reason or "unknown").inc()


def on_verdict(verdict) -> None:
    VERDICTS.labels(verdict.ename).inc()


def install(*, enforcement: str, telemetry, verdicts, bus) -> None:
    """Hook the metrics to the services (once per server): the sandbox's ``enforcement``
    backend, telemetry's snapshots, the VerdictBus and the execution bus."""
    ENFORCEMENT.clear()
    ENFORCEMENT.labels(enforcement).set(1)
    telemetry.listeners.append(on_snapshot)
    verdicts.add_listener(on_verdict)
    bus.observe(on_execution)
