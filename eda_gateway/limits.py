"""The limits admins configure, and each user's effective limits after overrides.

``EDASandbox`` and ``EDARateLimiter`` are configuration sections (traitlets),
as named in the README's configuration reference (isolation between kernels has its
own, ``EDAIsolation``, in eda_gateway/isolation/settings.py). ``LimitPolicy`` answers "what are alice's limits?",
applying ``EDAGateway.user_limits`` (per user, or per group as ``"@group"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace

from traitlets import Bool, Dict, Enum, Float, Int, List, TraitError, Tuple, Unicode, Union, validate
from traitlets.config import Configurable


def require_positive(proposal, allow_zero=False):
    value = proposal["value"]
    if value < 0 or (value == 0 and not allow_zero):
        owner = type(proposal["owner"]).__name__
        raise TraitError(
            f"{owner}.{proposal['trait'].name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}"
        )
    return value


class EDASandbox(Configurable):
    """Limits every kernel runs under."""

    max_execution_time = Float(
        30.0, config=True, help="Seconds of wall time one execution may take before it is stopped."
    )
    max_memory_mb = Int(
        512, config=True, help="Memory limit (MiB) for a kernel's whole process tree."
    )
    max_cpu_percent = Float(
        50.0, config=True, help="CPU share of one core a kernel may use (throttled, never killed)."
    )
    max_processes = Int(
        256, config=True, help="Most processes/threads a kernel's tree may hold (contains fork bombs)."
    )
    max_open_files = Int(
        1024, config=True,
        help="Most file descriptors each kernel process may hold (RLIMIT_NOFILE): bounds the sockets "
        "whose buffers could hold host memory outside the memory limit.",
    )
    interrupt_grace = Float(
        5.0,
        config=True,
        help="Seconds between interrupting a timed-out execution and killing its kernel.",
    )
    watchdog_interval = Float(
        0.25, config=True, help="Seconds between two checks of wall time and memory kills by the watchdog."
    )
    max_disk_mb = Int(
        1024, config=True,
        help="Disk space (MiB) of each user's workspace and content folder together: a filesystem of "
        "that size per user (docs/sandbox.md, Disk). 0: no disk quota. Needs a server running as root.",
    )
    disk_root = Unicode(
        "", config=True,
        help="Where the per-user disk images live (images/, mnt/). Default: eda_disks in the server's "
        "Jupyter data directory.",
    )
    enforcement = Enum(
        ["auto", "cgroup", "psutil"],
        "auto",
        config=True,
        help="How limits are enforced: auto (best available), cgroup (v2 or v1), or psutil.",
    )
    # --- deprecated: moved to EDAIsolation (eda_gateway/isolation/settings.py, docs/isolation.md) ---
    isolation = Union(
        [Unicode(), List(Unicode())], default_value="auto", config=True,
        help="Deprecated: use EDAIsolation.isolation.",
    )
    allow_network = Bool(False, config=True, help="Deprecated: use EDAIsolation.allow_network.")
    user_uids = Dict(key_trait=Unicode(), value_trait=Int(), config=True, help="Deprecated: use EDAIsolation.user_uids.")
    uid_range = Tuple(
        Int(), Int(), default_value=(300000, 399999), config=True, help="Deprecated: use EDAIsolation.uid_range."
    )

    @validate("isolation")
    def _known_layers(self, proposal):
        from .isolation.layers import parse_choice  # raises TraitError naming the setting

        parse_choice(proposal["value"], "EDASandbox.isolation")
        return proposal["value"]

    @validate("uid_range")
    def _sane_uid_range(self, proposal):
        from .isolation.settings import check_uid_range

        return check_uid_range(proposal)

    @validate("max_execution_time", "max_memory_mb", "max_cpu_percent", "max_processes", "max_open_files",
              "watchdog_interval")
    def _positive(self, proposal):
        return require_positive(proposal)

    @validate("disk_root")
    def _absolute_disk_root(self, proposal):
        if proposal["value"] and not proposal["value"].startswith("/"):
            raise TraitError(f"EDASandbox.disk_root must be an absolute path, got {proposal['value']!r}")
        return proposal["value"]

    @validate("interrupt_grace", "max_disk_mb")
    def _non_negative(self, proposal):
        return require_positive(proposal, allow_zero=True)


class EDARateLimiter(Configurable):
    """Per-user execution budget, shared by every execution path."""

    max_executions_per_minute = Int(
        10, config=True, help="Executions admitted per sliding window (window_seconds)."
    )
    max_concurrent_executions = Int(
        2, config=True, help="Kernels of one user that may run an execution at the same time."
    )
    window_seconds = Float(60.0, config=True, help="Length of the sliding window, in seconds.")
    max_executions_per_day = Int(
        0, config=True,
        help="Executions admitted per user in any rolling 24 h (a sliding window of 86400 s). 0: no daily quota.",
    )
    refusal_flood_window = Float(
        10.0, config=True, help="Seconds over which one kernel connection's refused executions are counted."
    )
    refusal_flood_slow_after = Int(
        10, config=True,
        help="Refusals per refusal_flood_window one connection gets answered at once; later ones wait "
        "refusal_flood_delay.",
    )
    refusal_flood_close_after = Int(
        50, config=True,
        help="Refusals per refusal_flood_window after which the connection is closed (code 4029).",
    )
    refusal_flood_delay = Float(1.0, config=True, help="Seconds a slowed connection's refusals wait.")

    store_url = Unicode(
        "", config=True,
        help="Where the budget is kept. Empty: in this server. 'redis://host:port/db' (or rediss://, "
        "unix://): in Redis, one budget for every server that points at it; the password from the URL "
        "or $EDA_STORE_PASSWORD (docs/scaling.md).",
    )
    lease_ttl = Float(
        30.0, config=True,
        help="With store_url: seconds a concurrency lease lives unless its server renews it (every "
        "lease_ttl / 3 while the execution runs): a server that dies gives its leases back within this.",
    )
    store_failure = Enum(
        ["closed", "open"], default_value="closed", config=True,
        help="With store_url, when Redis cannot be reached: 'closed' refuses executions "
        "(AdmissionUnavailable, HTTP 503) until it answers again; 'open' admits them uncounted.",
    )

    @validate("store_url")
    def _valid_store_url(self, proposal):
        if proposal["value"]:
            from .redis_store import check_url  # redis-py only where a store is configured

            try:
                check_url(proposal["value"])
            except ValueError as e:
                raise TraitError(f"EDARateLimiter.store_url: {e}") from None
        return proposal["value"]

    @validate("max_executions_per_minute", "max_concurrent_executions", "window_seconds", "refusal_flood_window",
              "refusal_flood_slow_after", "refusal_flood_close_after", "refusal_flood_delay", "lease_ttl")
    def _positive(self, proposal):
        return require_positive(proposal)

    @validate("max_executions_per_day")
    def _non_negative(self, proposal):
        return require_positive(proposal, allow_zero=True)


@dataclass(frozen=True)
class Limits:
    """One user's effective limits."""

    max_execution_time: float = 30.0
    max_memory_mb: int = 512
    max_cpu_percent: float = 50.0
    max_processes: int = 256
    max_open_files: int = 1024
    max_disk_mb: int = 1024  # workspace and content folder together; EDASandbox.max_disk_mb = 0: none
    max_executions_per_minute: int = 10
    max_concurrent_executions: int = 2
    window_seconds: float = 60.0
    max_executions_per_day: int = 0  # in any rolling 24 h; 0: no daily quota
    max_kernels_per_user: int = 4
    max_connections_per_user: int = 16  # kernel websockets open at once, all kernels together
    cull_idle_after: float = 3600.0  # seconds; 0: never

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @property
    def memory_bytes(self) -> int:
        return self.max_memory_mb * 1024 * 1024


def validate_user_limits(user_limits: dict) -> None:
    """Raise TraitError naming the bad entry of EDAGateway.user_limits."""
    known = Limits.names()
    for who, overrides in user_limits.items():
        where = f"EDAGateway.user_limits[{who!r}]"
        if not isinstance(who, str) or not who or who == "@":
            raise TraitError(f"{where}: keys are usernames or '@group'")
        if not isinstance(overrides, dict):
            raise TraitError(f"{where} must be a dict of limits, got {type(overrides).__name__}")
        for name, value in overrides.items():
            if name not in known:
                raise TraitError(f"{where}: unknown limit {name!r} (known: {', '.join(sorted(known))})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise TraitError(f"{where}[{name!r}] must be a positive number, got {value!r}")


class LimitPolicy:
    """Resolves effective limits: defaults, then group overrides, then user overrides.

    Where a user is in several groups that override the same limit, the most
    generous value wins; a per-user entry always wins over groups.
    """

    def __init__(self, base: Limits, user_limits: dict, groups: dict[str, list[str]],
                 all_groups_of: Callable[[str], Iterable[str]] | None = None):
        self.base = base
        self.user_limits = user_limits
        self.groups = groups
        # the configured groups and any others (JupyterHub's); default: the configured ones
        self._all_groups_of = all_groups_of or self.groups_of

    def groups_of(self, username: str) -> list[str]:
        """The configured groups (EDAGateway.groups) ``username`` is in."""
        return sorted(g for g, members in self.groups.items() if username in members)

    def for_user(self, username: str) -> Limits:
        merged: dict = {}
        for group in self._all_groups_of(username):
            for name, value in self.user_limits.get(f"@{group}", {}).items():
                merged[name] = max(value, merged.get(name, value))
        merged.update(self.user_limits.get(username, {}))
        return replace(self.base, **_coerce(merged))


def _coerce(values: dict) -> dict:
    types = {f.name: f.type for f in fields(Limits)}
    return {k: (int(v) if types[k] in ("int", int) else float(v)) for k, v in values.items()}
