"""What GET /advanced-eda/api/system-stats answers: the telemetry snapshot, the sandbox's
enforcement and the isolation layers, never a walk over processes."""

from __future__ import annotations

import time
from typing import Protocol


class _Snapshots(Protocol):
    snapshot: object  # eda_gateway.telemetry.Snapshot


class _Enforcement(Protocol):
    enforcement: str  # chosen at start-up: known before the first sample


class _Layers(Protocol):
    active: list[str]  # layers between kernels (eda_gateway/isolation)
    warning: str | None  # set when kernels run less confined than usual


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class SystemStats:
    def __init__(self, telemetry: _Snapshots, sandbox: _Enforcement, isolation: _Layers):
        self.telemetry = telemetry
        self.sandbox = sandbox
        self.isolation = isolation

    def report(self, user: str | None, everyone: bool) -> dict:
        """The host, and the kernels ``user`` may see (all of them when ``everyone``)."""
        snap = self.telemetry.snapshot
        return {
            "cpu": {"percent": snap.cpu_percent, "count": snap.cpu_count},
            "memory": {
                "total": snap.memory_total,
                "used": snap.memory_used,
                "available": snap.memory_available,
                "percent": snap.memory_percent,
            },
            "active_users": snap.active_users,
            "active_kernels": len(snap.kernels),
            "active_executions": snap.active_executions,
            "enforcement": self.sandbox.enforcement,
            "isolation": self.isolation.active,
            "isolation_warning": self.isolation.warning,
            "sampled_at": _iso(snap.sampled_at),
            "kernels": [k.to_json() for k in snap.kernels if everyone or k.user == user],
        }
