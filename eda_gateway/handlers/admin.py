"""Admin view over REST: who uses what now, and what happened over time.

- ``GET admin/users``: every user with recent activity or a kernel now: kernels,
  memory, CPU, budget use, refusals and verdicts by reason, last activity,
  effective limits. Admins only.
- ``GET admin/history``: time series in buckets for charts. Admins read anyone's
  (or everyone's); a user may read their own.
- ``GET admin/events``: the activity log itself, newest first, same access rules.

History reads hit the database (SQLite, or PostgreSQL shared by several servers: then
these answers cover all of them, each event naming its ``server``): they run in an
executor, after a flush of what the writer still holds, so an answer includes everything
this server recorded before the request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import time
from datetime import datetime, timezone

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..admission import iso
from ..authorization import ADMIN, HISTORY
from ..history import KINDS, MAX_BUCKETS
from .base import API_PREFIX, EDAAPIHandler

DEFAULT_HISTORY_RANGE = 3600.0  # charts: the last hour
DEFAULT_ACTIVITY_RANGE = 86400.0  # admin/users: refusals and verdicts of the last day
MAX_EVENTS = 5000
MAX_EPOCH = 32503680000.0  # year 3000: anything later is a typo, and would overflow dates

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(value: str, name: str) -> float:
    """ISO 8601 (``2026-11-28T01:02:03Z``, naive means UTC) or epoch seconds."""
    value = value.strip()
    try:
        epoch = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise web.HTTPError(400, f"{name} must be ISO 8601 or epoch seconds, got {value[:40]!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        try:
            epoch = moment.timestamp()
        except (OverflowError, ValueError):
            epoch = -1.0
    if not 0 <= epoch <= MAX_EPOCH:  # also refuses nan and inf
        raise web.HTTPError(400, f"{name} is out of range (1970 to 3000): {value[:40]!r}")
    return epoch


def parse_duration(value: str, name: str) -> float:
    """Seconds, or a number with s/m/h/d: ``300``, ``5m``, ``1h``."""
    match = _DURATION.fullmatch(value)
    if not match or float(match.group(1)) <= 0:
        raise web.HTTPError(400, f"{name} must be a positive duration like 60, 30s, 5m, 1h, got {value[:40]!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


class AdminAPIHandler(EDAAPIHandler):
    @property
    def history(self):
        return getattr(self.gateway, "history", None)

    def time_range(self, default_span: float) -> tuple[float, float]:
        now = time.time()
        until = self.get_argument("until", None)
        since = self.get_argument("since", None)
        until_t = parse_time(until, "until") if until else now
        since_t = parse_time(since, "since") if since else until_t - default_span
        if not since_t < until_t:
            raise web.HTTPError(400, "since must be before until")
        return since_t, until_t

    def readable_user(self) -> str | None:
        """The ``user`` to read: anyone for admins (None = everyone), else only oneself."""
        user = self.get_argument("user", None) or None
        if self.permissions.has_scope(self.username, ADMIN):
            return user
        if user is not None and not self.permissions.may_read_user(self.username, user):
            raise web.HTTPError(403, "only admins may read another user's history")
        return self.username

    async def read(self, fn, *args):
        """Run a blocking history read off the event loop, after flushing pending writes."""
        store = self.history
        if store is None:
            raise web.HTTPError(503, "usage history is not available on this server")

        def flushed_read():
            store.flush()
            return fn(*args)

        return await asyncio.get_running_loop().run_in_executor(None, flushed_read)


class AdminUsersHandler(AdminAPIHandler):
    auth_resource = ADMIN

    @web.authenticated
    @authorized(message="admin only")
    async def get(self):
        gateway = self.gateway
        since, until = self.time_range(DEFAULT_ACTIVITY_RANGE)
        summary = await self.read(self.history.summary, since, until) if self.history else {}
        usage = _kernel_usage(gateway)

        km = gateway.kernel_manager
        datasets = gateway.execution.kernels.datasets_by_kernel()
        kernels_by_user: dict[str, list[dict]] = {}
        for kid in list(km.list_kernel_ids()):
            owner = km.owner_of(kid)
            if not owner:
                continue
            try:
                model = km.kernel_model(kid)
            except (KeyError, web.HTTPError):
                continue  # stopped meanwhile
            measured = usage.get(kid, {})
            kernels_by_user.setdefault(owner, []).append(
                {
                    "kernel_id": kid,
                    "name": model.get("name"),
                    "execution_state": model.get("execution_state"),
                    "connections": model.get("connections", 0),
                    "last_activity": model.get("last_activity"),
                    "memory_bytes": measured.get("memory_bytes"),
                    "cpu_percent": measured.get("cpu_percent"),
                    "dataset": datasets.get(kid),
                    "warm": kid in datasets and datasets[kid] is None,
                }
            )
        active = {e["user"] for e in gateway.admission.active_executions()}
        names = sorted((set(summary) | set(kernels_by_user) | active) - {""})

        users = []
        for name in names:
            kernels = kernels_by_user.get(name, [])
            seen = summary.get(name, {})
            usage = gateway.admission.usage(name)  # an admin looking: the user's session does not start
            last = [seen["last_activity"]] if seen.get("last_activity") else []
            last += [_epoch(k["last_activity"]) for k in kernels if k["last_activity"]]
            measured = [k for k in kernels if k["memory_bytes"] is not None]
            limits = gateway.limits_for(name)
            users.append(
                {
                    "user": name,
                    "admin": self.permissions.has_scope(name, ADMIN),
                    "groups": gateway.groups_of(name),
                    "kernels": kernels,
                    "kernel_count": len(kernels),
                    "memory_bytes": sum(k["memory_bytes"] for k in measured) if measured else None,
                    "cpu_percent": round(sum(k["cpu_percent"] or 0.0 for k in measured), 2) if measured else None,
                    "executions_in_window": usage.executions_in_window,
                    "concurrent_executions": usage.concurrent_executions,
                    "status": usage.level,
                    "executions": seen.get("executions", 0),
                    "refusals": seen.get("refusals", {}),
                    "verdicts": seen.get("verdicts", {}),
                    "last_activity": iso(max(last)) if last else None,
                    "limits": {**dataclasses.asdict(limits), "memory_bytes": limits.memory_bytes},
                    "servers": seen.get("servers", []),
                }
            )
        answer = {"since": iso(since), "until": iso(until), "users": users}
        if getattr(gateway, "peers", None) is not None:
            answer["servers"] = await self._servers(gateway.peers)
        self.finish(answer)

    async def _servers(self, peers) -> list[dict]:
        """Every server on the shared store, with its live kernels (docs/scaling.md)."""
        try:
            beats = await asyncio.get_running_loop().run_in_executor(None, peers.servers)
        except Exception as e:  # the store is out of reach: this server's own view still answers
            self.log.warning("eda_gateway: the servers on the shared store cannot be read: %s", type(e).__name__)
            return []
        return [{**beat, "published_at": iso(beat["published_at"]), "this_server": beat["server"] == peers.name}
                for beat in beats if isinstance(beat.get("published_at"), (int, float))]


class AdminHistoryHandler(AdminAPIHandler):
    auth_resource = HISTORY

    @web.authenticated
    @authorized
    async def get(self):
        user = self.readable_user()
        since, until = self.time_range(DEFAULT_HISTORY_RANGE)
        bucket_arg = self.get_argument("bucket", None)
        if bucket_arg is not None:
            bucket = parse_duration(bucket_arg, "bucket")
            if bucket < 1:
                raise web.HTTPError(400, "bucket must be at least 1 second")
        else:  # about 240 points whatever the range, in whole minutes
            bucket = max(60.0, math.ceil((until - since) / 240 / 60) * 60)
        # buckets on wall-clock multiples: the same minute is the same bucket in every answer
        since = math.floor(since / bucket) * bucket
        if math.ceil((until - since) / bucket) > MAX_BUCKETS:
            raise web.HTTPError(400, f"at most {MAX_BUCKETS} buckets: use a larger bucket or a shorter range")
        series, summary = await self.read(self._series_and_summary, user, since, until, bucket)
        out = []
        for name, points in series.items():
            if not name:
                continue
            totals = summary.get(name, {})
            out.append(
                {
                    "user": name,
                    "totals": {
                        "executions": totals.get("executions", 0),
                        "refusals": totals.get("refusals", {}),
                        "verdicts": totals.get("verdicts", {}),
                    },
                    "points": [{**p, "start": iso(p["start"])} for p in points],
                    "servers": totals.get("servers", []),
                }
            )
        self.finish({"since": iso(since), "until": iso(until), "bucket_seconds": bucket, "users": out})

    def _series_and_summary(self, user, since, until, bucket):
        series = self.history.series(user, since, until, bucket)
        summary = self.history.summary(since, until, user)  # a user asking for their own: only theirs
        return series, summary


class AdminEventsHandler(AdminAPIHandler):
    auth_resource = HISTORY

    @web.authenticated
    @authorized
    async def get(self):
        user = self.readable_user()
        since, until = self.time_range(DEFAULT_ACTIVITY_RANGE)
        kinds = self.get_arguments("kind")
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise web.HTTPError(400, f"unknown kind {unknown[0][:40]!r}; known: {', '.join(KINDS)}")
        limit_arg = self.get_argument("limit", "500")
        limit = int(limit_arg) if limit_arg.isdigit() and limit_arg.isascii() else 0
        if not 1 <= limit <= MAX_EVENTS:
            raise web.HTTPError(400, f"limit must be between 1 and {MAX_EVENTS}")
        events = await self.read(self.history.events, user, since, until, kinds, limit)
        for event in events:
            event["at"] = _iso_precise(event["at"])
        self.finish({"since": iso(since), "until": iso(until), "events": events})


def _kernel_usage(gateway) -> dict[str, dict]:
    """kernel_id -> {memory_bytes, cpu_percent} from the telemetry sampler's latest snapshot."""
    telemetry = getattr(gateway, "telemetry", None)
    if telemetry is None or telemetry.snapshot.sampled_at is None:
        return {}
    return {
        k.kernel_id: {"memory_bytes": k.memory_bytes, "cpu_percent": round(k.cpu_percent, 1)}
        for k in telemetry.snapshot.kernels
    }


def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    return parse_time(str(value), "last_activity")


def _iso_precise(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


routes = [
    (rf"{API_PREFIX}/admin/users", AdminUsersHandler),
    (rf"{API_PREFIX}/admin/history", AdminHistoryHandler),
    (rf"{API_PREFIX}/admin/events", AdminEventsHandler),
]
