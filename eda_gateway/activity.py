"""The activity log: what happened, told once to jupyter_events and to the history.

Sources (wired by the app): admission decisions (execution bus), sandbox verdicts, kernel life
cycle, logins. Each becomes one jupyter_events event on the server's
``event_logger`` (schemas in ``event_schemas/``, so admins route them with
ordinary config, e.g. ``c.EventLogger.handlers``) and one row in the history
store; refusals are counted there instead, one row per user and minute. Nothing here blocks or raises into its source: an observer must never
break an execution or a login.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from pathlib import Path

from . import history as h
from .history import HistoryStore, Sample
from .ledger import ExecutionAdmitted, ExecutionEvent, ExecutionRefused

log = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).parent / "event_schemas"
SCHEMA_BASE = "https://events.jupyter.org/eda_gateway"
EXECUTION_SCHEMA = f"{SCHEMA_BASE}/execution/v1"
VERDICT_SCHEMA = f"{SCHEMA_BASE}/verdict/v1"
KERNEL_SCHEMA = f"{SCHEMA_BASE}/kernel/v1"
LOGIN_SCHEMA = f"{SCHEMA_BASE}/login/v1"


def schema_paths() -> list[Path]:
    return sorted(p for p in SCHEMA_DIR.glob("*/v*.*") if p.suffix in (".yaml", ".yml", ".json"))


def register_schemas(event_logger) -> list[str]:
    """Register our schemas on a jupyter_events EventLogger; returns their ids."""
    ids = []
    for path in schema_paths():
        event_logger.register_event_schema(path)
        ids.append(f"{SCHEMA_BASE}/{path.parent.name}/{path.stem}")
    return ids


class ActivityLog:
    def __init__(
        self,
        event_logger,
        history: HistoryStore | None,
        owner_of: Callable[[str], str | None],
    ) -> None:
        self.event_logger = event_logger
        self.history = history
        self.owner_of = owner_of
        self._seen_users: set[str] = set()  # users whose first request was logged

    # --- sources ----------------------------------------------------------------

    def on_execution(self, event: ExecutionEvent) -> None:
        """Execution bus observer: admissions and refusals are activity; the rest is not."""
        if isinstance(event, ExecutionAdmitted):
            action, reason = "admitted", None
        elif isinstance(event, ExecutionRefused):
            action, reason = "refused", event.reason
        else:
            return
        user, kid = event.user or "", event.kernel_id or ""
        self._emit(
            EXECUTION_SCHEMA,
            {
                "action": action,
                "user": user,
                "kernel_id": kid,
                "msg_id": event.msg_id,
                "source": event.source,
                "reason": reason,
            },
        )
        if action == "refused":
            # a refusal costs its sender nothing: counted per user and minute, not a row each
            self._record(h.EXECUTION_REFUSED, user, counted=True, at=event.at, kernel_id=kid,
                         source=event.source, reason=reason)
            return
        self._record(h.EXECUTION_ADMITTED, user, at=event.at, kernel_id=kid, source=event.source, reason=reason)

    def on_verdict(self, verdict) -> None:
        """verdict bus listener: a limit ended an execution (or a user's disk is full)."""
        user = verdict.user or self.owner_of(verdict.kernel_id)
        self._emit(
            VERDICT_SCHEMA,
            {
                "ename": verdict.ename,
                "evalue": verdict.evalue,
                "user": user,
                "kernel_id": verdict.kernel_id,
                "msg_id": verdict.msg_id,
                "killed": bool(verdict.killed),
            },
        )
        self._record(
            h.VERDICT,
            user or "",
            at=verdict.at,
            kernel_id=verdict.kernel_id or None,  # DiskQuotaExceeded is about no one kernel
            reason=verdict.ename,
            details={"killed": bool(verdict.killed), "msg_id": verdict.msg_id},
        )

    def on_kernel_event(self, event: str, kernel_id: str, owner: str) -> None:
        """kernel manager listener: started / restarted / stopped."""
        kinds = {"started": h.KERNEL_STARTED, "restarted": h.KERNEL_RESTARTED, "stopped": h.KERNEL_STOPPED,
                 "culled": h.KERNEL_RECLAIMED, "reclaimed": h.KERNEL_RECLAIMED}
        if event not in kinds:
            return
        self._emit(KERNEL_SCHEMA, {"action": event, "user": owner or "", "kernel_id": kernel_id})
        # culled: idle past cull_idle_after; reclaimed: idle, to make room at max_kernels_per_user
        reason = {"culled": "idle", "reclaimed": "quota"}.get(event)
        self._record(kinds[event], owner or "", kernel_id=kernel_id, reason=reason)

    def on_login(self, user: str, method: str) -> None:
        self._seen_users.add(user)
        self._emit(LOGIN_SCHEMA, {"user": user, "method": method})
        self._record(h.LOGIN, user, details={"method": method})

    # --- logins, for any IdentityProvider -----------------------------------------

    def watch_logins(self, identity_provider) -> None:
        """Log form logins and each user's first authenticated request in this process.

        Wraps the provider instance's own ``process_login_form`` and ``get_user``
        (whatever class it is), so no IdentityProvider needs to know about us.
        """
        process_login_form = identity_provider.process_login_form
        get_user = identity_provider.get_user

        def logged_process_login_form(handler):
            user = process_login_form(handler)
            if user is not None:
                self._safely(self.on_login, _username(user), "form")
            return user

        def first_seen(handler, user):
            name = _username(user)
            if name and name not in self._seen_users:
                try:
                    method = "token" if identity_provider.get_token(handler) else "cookie"
                except Exception:
                    method = "token"
                self._safely(self.on_login, name, method)

        def logged_get_user(handler):
            # get_user may return a user or an awaitable of one (the base class does the latter)
            result = get_user(handler)
            if not inspect.isawaitable(result):
                if result is not None:
                    first_seen(handler, result)
                return result

            async def waited():
                user = await result
                if user is not None:
                    first_seen(handler, user)
                return user

            return waited()

        identity_provider.process_login_form = logged_process_login_form
        identity_provider.get_user = logged_get_user

    # --- sinks ------------------------------------------------------------------------

    def _emit(self, schema_id: str, data: dict) -> None:
        if self.event_logger is None:
            return
        try:
            self.event_logger.emit(schema_id=schema_id, data=data)
        except Exception:
            log.exception("eda_gateway: activity event %s not emitted", schema_id)

    def _record(self, kind: str, user: str, counted: bool = False, **fields) -> None:
        if self.history is None:
            return
        try:
            (self.history.record_count if counted else self.history.record_event)(kind, user, **fields)
        except Exception:
            log.exception("eda_gateway: activity %s not recorded", kind)

    @staticmethod
    def _safely(fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("eda_gateway: login activity not logged")


def _username(user) -> str:
    return getattr(user, "username", None) or (user if isinstance(user, str) else "")


class UsageRecorder:
    """Telemetry listener: one history sample per user per ``interval``.

    The sampler runs every few seconds; storing each snapshot would be wasteful, and
    keeping only every n-th would miss peaks. So snapshots are folded per user (peak
    memory, mean CPU, most kernels) and written once per interval.
    """

    def __init__(self, history: HistoryStore, interval: float, clock: Callable[[], float] = time.time) -> None:
        self.history = history
        self.interval = interval
        self.clock = clock
        self._started = clock()
        self._acc: dict[str, list] = {}  # user -> [peak memory, cpu sum, snapshots, peak kernels]

    def on_snapshot(self, snapshot) -> None:
        per_user: dict[str, list] = {}
        for k in snapshot.kernels:
            if k.user:
                entry = per_user.setdefault(k.user, [0, 0.0, 0])
                entry[0] += k.memory_bytes
                entry[1] += k.cpu_percent
                entry[2] += 1
        for user, (memory, cpu, kernels) in per_user.items():
            acc = self._acc.setdefault(user, [0, 0.0, 0, 0])
            acc[0] = max(acc[0], memory)
            acc[1] += cpu
            acc[2] += 1
            acc[3] = max(acc[3], kernels)
        now = self.clock()
        if now - self._started >= self.interval:
            self.flush(now)

    def flush(self, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        samples = [
            Sample(user=user, kernels=kernels, memory_bytes=peak, cpu_percent=round(cpu / n, 2), ts=now)
            for user, (peak, cpu, n, kernels) in self._acc.items()
            if n
        ]
        self._acc.clear()
        self._started = now
        self.history.record_samples(samples)
        return len(samples)
