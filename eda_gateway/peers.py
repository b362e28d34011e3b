"""The servers that share one admission store, as an admin sees them (docs/scaling.md).

Each server publishes a heartbeat into the shared Redis: its name, where to reach it and
its live kernels (owner, memory, CPU, state) from the latest telemetry snapshot. The key
expires ``ttl`` seconds after the last heartbeat, so a server that stops or dies leaves
the view by itself. ``servers()`` reads every heartbeat in one pass; the admin dashboard
lists them, each kernel linked to the server that owns it (kernel actions go there).
Blocking calls: run them in an executor.
"""

from __future__ import annotations

import json
import logging
import time

log = logging.getLogger(__name__)


def kernels_of(snapshot) -> list[dict]:
    """The heartbeat's view of a telemetry snapshot's kernels."""
    return [
        {"kernel_id": k.kernel_id, "user": k.user, "memory_bytes": k.memory_bytes,
         "cpu_percent": round(k.cpu_percent, 2), "execution_state": k.execution_state}
        for k in snapshot.kernels
    ]


class ServerDirectory:
    """Heartbeats of the servers on one Redis (``client``: a redis-py client)."""

    def __init__(self, client, name: str, url: str, ttl: float = 30.0, prefix: str = "eda") -> None:
        self._redis = client
        self.name = name
        self.url = url
        self.ttl = ttl
        self._prefix = f"{prefix}:servers:"

    def publish(self, kernels: list[dict], now: float | None = None) -> None:
        beat = {"server": self.name, "url": self.url, "published_at": now if now is not None else time.time(),
                "kernels": kernels}
        self._redis.set(self._prefix + self.name, json.dumps(beat), ex=max(1, int(self.ttl)))

    def withdraw(self) -> None:
        self._redis.delete(self._prefix + self.name)

    def servers(self) -> list[dict]:
        """Every live server's last heartbeat (this one's too), by name."""
        keys = sorted(self._redis.scan_iter(match=self._prefix + "*", count=200))
        beats = []
        for raw in self._redis.mget(keys) if keys else []:
            try:
                beat = json.loads(raw) if raw else None
            except ValueError:
                beat = None
            if isinstance(beat, dict) and isinstance(beat.get("server"), str):
                beats.append(beat)
        return sorted(beats, key=lambda b: b["server"])
