"""The eda_gateway server extension: configuration, wiring and background tasks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.services.sessions.sessionmanager import SessionManager
from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Dict, Enum, Float, Int, List, Set, TraitError, Unicode, default, validate

from . import capacity, claims, composition, hub, logscrub
from .composition import CannotCompose
from .connections import ConnectionLimiter
from .identity import MODES, IdentityMode, choose_mode, default_owner, single_owner_provider
from .authorization import EDAAuthorizer, Ownership, Roles
from .handlers.lab_management import guard_lab_management
from .contents import EDAContentsManager, UserFolders
from .datasets import DatasetCatalogue, validate_datasets
from .endings import KernelEndings
from .execution import ExecutionService
from .activity import ActivityLog, UsageRecorder, register_schemas
from .history import HistoryStore
from .history_backends import URL_SCHEMES
from .hub import HubPlace
from . import http_limits
from .refusal_flood import RefusalFlood
from .refusal_log import RefusalLog, quiet_refusals
from .isolation.layers import IsolationUnavailable
from .isolation.settings import EDAIsolation
from .admission import SAFETY_MARGIN_SECONDS, AdmissionService, MemoryStore
from .ledger import ExecutionBus, ExecutionLedger
from .kernels import EDAKernelManager
from .lease_keeper import LeaseKeeper
from .metrics import ADMISSION_STORE_FAILURES, ADMISSION_STORE_UP
from .limits import EDARateLimiter, EDASandbox, LimitPolicy, Limits, require_positive, validate_user_limits
from .sessions import EDASessionManager
from .sandbox import Sandbox, SandboxUnavailable, install_factory
from .sandbox.launcher import LaunchChain
from .sandbox.service import WatchdogPeers
from .system_stats import SystemStats
from .telemetry import EDATelemetry
from .quotas import SETTING as DISK_SETTING, DiskQuotas, DiskQuotaUnavailable
from .users import user_id
from .verdicts import DISK_QUOTA_EXCEEDED, Verdict, VerdictBus
from .workspaces import Workspaces


class ConfigurationError(Exception):
    """A setting that stops start-up; the message names the setting."""


MAX_BODY_BYTES = 100 * 1024 * 1024  # the server's request body cap, unless an admin sets ServerApp's


class EDAGateway(ExtensionApp):
    """Share one Jupyter server safely: owned kernels, sandbox limits, fair budgets."""

    name = "eda_gateway"
    description = "eda_gateway: a multi-user kernel gateway with limits (REST + kernel websockets)"
    extension_url = "/api/status"
    load_other_extensions = True

    classes = [EDASandbox, EDAIsolation, EDARateLimiter, EDATelemetry]

    admin_users = Set(Unicode(), config=True, help="Usernames that see and act on everything.")
    admin_groups = Set(
        Unicode(), config=True,
        help="Groups whose members are admins: groups of EDAGateway.groups, and under JupyterHub the Hub's groups.",
    )
    hub_groups = Bool(
        True, config=True,
        help="Under JupyterHub: the Hub's groups of a user are eda_gateway groups too ('@group' in user_limits, "
        "datasets, admin_groups), read from the Hub as it identifies the user.",
    )
    hub_admins = Bool(True, config=True, help="Under JupyterHub: the Hub's admins are eda_gateway admins.")
    identity_mode = Enum(
        MODES,
        default_value="auto",
        config=True,
        help="'single-user': the server's token holder is one owner (a personal jupyter lab, plus the limits); "
        "'multi-user': users as the identity provider names them; 'auto': single-user exactly under "
        "jupyter_server's own identity providers, which do not name users.",
    )
    single_user_name = Unicode(
        "", config=True, help="The owner's name in single-user mode. Default: the server's OS user name."
    )
    groups = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        config=True,
        help="Named groups of users: {'analysts': ['alice', 'bob']}; '@analysts' in user_limits.",
    )
    max_kernels_per_user = Int(4, config=True, help="Kernels one user may have (pending starts count).")
    max_connections_per_user = Int(
        16, config=True,
        help="Kernel websockets one user may have open at once, all their kernels together (each holds "
        "4 ZMQ sockets of the server); one more is refused with HTTP 429. Per user or group in user_limits.",
    )
    max_connections_total = Int(
        0, config=True,
        help="Kernel websockets the whole server serves at once; the ZMQ context and the open-files limit "
        "are sized for it at start. 0: known users (EDAIdentityProvider.user_tokens) x "
        "max_connections_per_user, or 64 users' worth when users are not known in advance.",
    )
    cull_idle_after = Float(
        3600, config=True,
        help="Seconds a kernel may sit idle with no client connected before it is shut down (0: never); "
        "per user or group in user_limits.",
    )
    reclaim_idle_at_quota = Bool(
        True, config=True,
        help="At max_kernels_per_user, shut down the user's least recently used idle kernel (no client "
        "connected) to start the new one, instead of refusing.",
    )
    workspace_root = Unicode(
        config=True,
        help="Each user gets <workspace_root>/eda_user_<user_id>/ (mode 0700). Default: /tmp; in a server "
        "JupyterHub spawned for a user, eda_workspaces in that server's Jupyter data directory.",
    )

    @default("workspace_root")
    def _workspace_root_default(self):
        if HubPlace.from_environment().owner:
            # one server per user, maybe many on one host: each its own (a shared /tmp is one server's)
            return os.path.join(jupyter_data_dir(), "eda_workspaces")
        return "/tmp"
    cleanup_interval = Float(3600, config=True, help="Seconds between clean-ups of old workspace files.")
    temp_file_max_age = Float(86400, config=True, help="Workspace files older than this (s) are deleted.")
    user_limits = Dict(
        config=True,
        help="Per-user ('alice') or per-group ('@analysts') overrides of any limit, "
        "e.g. {'alice': {'max_memory_mb': 2048}}.",
    )
    datasets = Dict(
        config=True,
        help="Datasets and who may use them: {'sales': {'path': '/data/sales.csv', "
        "'users': ['alice'], 'groups': ['analysts'], 'description': '...'}}.",
    )
    warm_start = Bool(
        True, config=True,
        help="Keep one warm kernel per active user (started, confined and with pandas imported) for their "
        "next run on a dataset not run on yet: the first result in well under a second instead of seconds. "
        "It counts as one of their kernels (only started below max_kernels_per_user) and is culled when idle.",
    )
    max_code_bytes = Int(1024 * 1024, config=True, help="Largest code body the REST execution API accepts.")
    max_output_bytes = Int(
        1024 * 1024,
        config=True,
        help="Output of one REST execution kept in its answer; the rest is dropped with a marker.",
    )

    server_name = Unicode(
        "", config=True,
        help="This server's name in a shared history and in the admin view across servers "
        "(docs/scaling.md). Default: <host name>:<port>.",
    )
    server_url = Unicode(
        "", config=True,
        help="Where admins reach this server from another one's dashboard (its kernels' actions go "
        "there). Default: the server's own URL; under JupyterHub, its public URL.",
    )

    heartbeat_interval = Float(
        10.0, config=True,
        help="With a shared admission store: seconds between two heartbeats of this server (its live "
        "kernels, for the admin view across servers); a server silent for 3 heartbeats leaves the view.",
    )

    history_db = Unicode(
        "",
        config=True,
        help="The usage history and activity log (survives restarts): a SQLite file, or a "
        "'postgresql://user@host/db' URL shared by several servers, each row naming its server "
        "(docs/scaling.md). Default: eda_gateway_history.sqlite in the server's Jupyter data directory.",
    )
    history_retention_days = Float(30, config=True, help="History older than this (days) is purged.")
    history_max_rows = Int(
        1_000_000, config=True,
        help="Most events (and most usage samples) kept per user; that user's oldest go first, so no "
        "user's activity evicts another's. Refusals are one counted row per user and minute."
    )
    history_sample_interval = Float(
        60, config=True, help="Seconds between two usage samples (peak memory, mean CPU per user) in the history."
    )

    request_read_timeout = Float(
        30, config=True,
        help="Seconds a client may take to send a request's headers, or pause in the middle of its body, "
        "before the server closes the connection (also closes keep-alive connections idle that long).",
    )
    max_body_bytes_in_flight = Int(
        128 * 1024 * 1024, config=True,
        help="Bytes of request bodies (over 1 MiB each) the server receives and holds at once; a body "
        "beyond that is answered 503 with Retry-After without being kept. Memory use is about 3x this.",
    )
    max_body_bytes_in_flight_per_user = Int(
        100 * 1024 * 1024, config=True,
        help="Bytes of request bodies (over 1 MiB each) one caller (token or login cookie) sends at once; "
        "one body of any allowed size always passes alone. Beyond: 429 with Retry-After.",
    )

    @validate("cull_idle_after", "max_connections_total")
    def _not_negative(self, proposal):
        return require_positive(proposal, allow_zero=True)

    @validate(
        "max_kernels_per_user", "max_connections_per_user", "max_code_bytes", "max_output_bytes", "cleanup_interval",
        "temp_file_max_age", "heartbeat_interval", "history_retention_days", "history_max_rows", "history_sample_interval",
        "request_read_timeout", "max_body_bytes_in_flight", "max_body_bytes_in_flight_per_user",
    )
    def _positive(self, proposal):
        return require_positive(proposal)

    @validate("workspace_root")
    def _absolute_root(self, proposal):
        if not os.path.isabs(proposal["value"]):
            raise TraitError(f"EDAGateway.workspace_root must be an absolute path, got {proposal['value']!r}")
        return proposal["value"]

    @validate("user_limits")
    def _valid_user_limits(self, proposal):
        validate_user_limits(proposal["value"])
        return proposal["value"]

    @validate("datasets")
    def _valid_datasets(self, proposal):
        validate_datasets(proposal["value"])
        return proposal["value"]

    # --- linking: runs before the server builds its managers ----------------

    def _link_jupyter_server_extension(self, serverapp):
        self.active = False
        self.identity = IdentityMode(False, "", "not linked")
        self.hub_membership = hub.HubMembership()
        self.hub_place = HubPlace()
        self.roles = Roles(())
        try:
            super()._link_jupyter_server_extension(serverapp)
            self.sandbox_config = EDASandbox(parent=self)
            self.isolation_config = EDAIsolation(parent=self)  # also takes the old EDASandbox.<name>s
            self.rate_config = EDARateLimiter(parent=self)
        except TraitError as e:
            # The extension manager would only log this and start an unprotected
            # server: refuse to start instead, naming the setting.
            serverapp.log.critical("eda_gateway: bad configuration: %s", e)
            sys.exit(f"eda_gateway: bad configuration: {e}")
        if GatewayClient.instance(parent=serverapp).gateway_enabled:
            # Kernels live on the remote gateway: nothing here could confine or count them.
            serverapp.log.warning("eda_gateway: inactive: this server runs its kernels on a remote gateway "
                                  "(GatewayClient.url); limits and per-user ownership apply there, not here")
            return
        self.active = True
        hub.link_hub_extension_first(serverapp)  # it sets the identity provider we choose the mode by
        self.hub_place = HubPlace.from_environment()
        self.identity = choose_mode(self.identity_mode, serverapp.identity_provider_class,
                                    self.single_user_name or default_owner(), hub_owner=self.hub_place.owner)
        serverapp.log.info("eda_gateway: %s", self.identity.describe())
        if hub.is_hub_provider(serverapp.identity_provider_class):
            composition.install(serverapp, "identity_provider_class",
                                hub.recording_provider(serverapp.identity_provider_class, self.hub_membership))
            serverapp.log.info("eda_gateway: JupyterHub %s: users, groups%s from the Hub",
                               f"service {self.hub_place.service!r}" if self.hub_place.service
                               else f"server of {self.hub_place.owner!r}" if self.hub_place.owner else "login",
                               " and admins" if self.hub_admins else "")
        # a personal server's owner may do all that a plain jupyter lab allows
        self.roles = Roles(self.admin_users, self.identity.owner, self.admin_groups, self.groups_of,
                           self.hub_membership.is_admin if self.hub_admins else None)
        if self.identity.single_user:
            composition.install(serverapp, "identity_provider_class",
                                single_owner_provider(serverapp.identity_provider_class, self.identity.owner))
        try:
            self._install_managers(serverapp)
        except CannotCompose as e:
            serverapp.log.critical("eda_gateway: %s", e)
            sys.exit(f"eda_gateway: {e}")
        serverapp.authorizer_class = EDAAuthorizer
        install_factory(serverapp)  # every kernel starts through the sandbox's provisioner
        # jupyter_server reads up to 512 MB of body into memory per request (and holds ~3x
        # that while decoding it): a few uploads at once and the shared server is gone.
        # JupyterLab uploads big files in 1 MB chunks, so a smaller cap costs users nothing.
        for trait in ("max_body_size", "max_buffer_size"):
            if trait not in serverapp.config.get("ServerApp", {}):
                setattr(serverapp, trait, MAX_BODY_BYTES)
        for hook in self.link_hooks:
            hook(self, serverapp)

    def _install_managers(self, serverapp) -> None:
        """Ours, on top of any class an admin configured (eda_gateway/composition.py)."""
        from .websocket import EDAKernelWebsocketConnection

        needed = [
            ("kernel_manager_class", EDAKernelManager, AsyncMappingKernelManager,
             "kernel ownership, quotas and sandbox"),
            ("kernel_websocket_connection_class", EDAKernelWebsocketConnection, ZMQChannelsWebsocketConnection,
             "admission of notebook executions (the rate limit over websockets)"),
        ]
        per_user = [
            ("session_manager_class", EDASessionManager, SessionManager, "session ownership"),
            ("contents_manager_class", EDAContentsManager, AsyncFileContentsManager, "per-user folders"),
        ]
        for trait, ours, base, protects in needed:
            composition.install(serverapp, trait, composition.compose(serverapp, trait, ours, base, protects))
        for trait, ours, base, protects in per_user:
            try:
                chosen = composition.compose(serverapp, trait, ours, base, protects)
            except CannotCompose as e:
                if not self.identity.single_user:
                    raise
                # one user: nothing to keep apart, so the admin's own class serves as is
                serverapp.log.info("eda_gateway: keeping the configured ServerApp.%s (%s)", trait, e)
                continue
            composition.install(serverapp, trait, chosen)

    # Later services register here to adjust the server before it starts.
    link_hooks: list = []

    # --- wiring --------------------------------------------------------------

    def initialize_settings(self):
        self._tasks: list[asyncio.Task] = []
        if not self.active:
            return
        try:
            self._wire_services()
        except TraitError as e:  # a section built with its service (EDATelemetry)
            self.log.critical("eda_gateway: bad configuration: %s", e)
            sys.exit(f"eda_gateway: bad configuration: {e}")
        except Exception as e:
            # jupyter_server would log this and serve on without eda_gateway's
            # protection: a shared server must not start half-guarded.
            self.log.critical("eda_gateway: failed to start its services", exc_info=True)
            sys.exit(f"eda_gateway: failed to start: {e}")

    def _wire_services(self):
        """Every service, built with its collaborators; nothing below reads this app."""
        self.claims: list[claims.Claim] = []
        logscrub.install(self.serverapp.log, self.log)
        self.policy = LimitPolicy(self.base_limits(), self.user_limits, self.groups, self.groups_of)
        self.workspaces = Workspaces(self.workspace_root)
        os.makedirs(self.workspace_root, exist_ok=True)
        # before anything touches the workspaces: another server's must never be moved or cleaned
        self._claim(self.workspaces.lock_path, "EDAGateway.workspace_root")
        self.kernel_manager = self.serverapp.kernel_manager
        self.session_manager = self.serverapp.session_manager
        contents_manager = self.serverapp.contents_manager
        # one answer to "may U act on kernel/session/folder P" (eda_gateway/authorization.py)
        self.ownership = Ownership(self.roles, self.kernel_manager.owner_of,
                                   getattr(self.session_manager, "owner_of_session", lambda session_id: None))
        for manager in (self.kernel_manager, self.session_manager, contents_manager):
            manager.ownership = self.ownership
        if not isinstance(self.serverapp.authorizer, EDAAuthorizer):  # nobody would enforce ownership
            raise TypeError(f"ServerApp.authorizer is {type(self.serverapp.authorizer).__name__}, not EDAAuthorizer")
        self.serverapp.authorizer.ownership = self.ownership
        self.settings["eda_gateway"] = self
        self.verdicts = VerdictBus()
        self.connections = self._size_for_connections()
        self.kernel_manager.listeners.append(self._on_kernel_event)
        # one per-user execution budget for every path; every lease begins and ends in the
        # ledger, whose bus stops a kernel when a limit's subscriber fails on it
        async def stop_unlimited_kernel(kernel_id: str) -> None:
            await self.sandbox.kill_tree(kernel_id)
            if kernel_id in self.kernel_manager:
                await self.kernel_manager.shutdown_kernel(kernel_id, now=True)

        lease_store = self._admission_store()
        expiry_extra = self.sandbox_config.interrupt_grace + SAFETY_MARGIN_SECONDS
        self.execution_bus = ExecutionBus(stop_kernel=stop_unlimited_kernel, logger=self.log)
        self.ledger = ExecutionLedger(
            self.execution_bus, lease_store, lambda user: self.admission.limits(user).max_execution_time + expiry_extra
        )
        self.admission = AdmissionService(self.limits_for, store=lease_store, ledger=self.ledger,
                                          fail_open=self.rate_config.store_failure == "open")
        self.refusal_log = RefusalLog(self.log)
        self.lease_keeper = LeaseKeeper(self.ledger, self.kernel_manager)
        self.kernel_manager.listeners.append(self.lease_keeper.on_kernel_event)
        self.verdicts.add_listener(self.lease_keeper.on_verdict)
        self.datasets_catalogue = DatasetCatalogue(self.datasets, self.is_admin, self.groups_of)
        self.folders = UserFolders(self.serverapp.root_dir, self.workspaces, self.ownership)
        self.isolation = self._isolation()  # kernels must not reach each other (docs/isolation.md)
        self.disk_quotas = self.workspaces.disk = self._start_disk_quotas()
        contents_manager.disk_quotas = self.disk_quotas
        contents_manager.uid_of_files = self.isolation.uid_of_files
        self._start_sandbox()
        self._start_isolation()  # after the sandbox and disk quotas: their refusals are named first
        # every kernel (re)launch: the sandbox's limits, then isolation's layers
        self.kernel_manager.use(
            ownership=self.ownership,
            launch_chain=LaunchChain(self.sandbox, self.isolation, self.kernel_manager.owner_of),
            folders=self.folders,
            limits_for=self.limits_for,
            pending_on=self.ledger.pending_on,
            default_owner=self.identity.owner,
            reclaim_idle_at_quota=self.reclaim_idle_at_quota,
        )
        if self.disk_quotas is not None:
            self.telemetry.listeners.append(self.disk_quotas.check)  # a kernel filled its volume
        # before any listener below releases leases: what still waits gets its answer
        endings = KernelEndings(self.verdicts, self.ledger.pending_on, self.sandbox.memory_verdict_for)
        self.kernel_manager.listeners.insert(0, endings.on_kernel_event)
        self.kernel_manager.listeners.append(self.isolation.on_kernel_event)
        self.execution = ExecutionService(
            self.admission, self.ledger, self.kernel_manager, self.verdicts, self.sandbox, self.limits_for,
            self.sandbox_config.interrupt_grace, self.datasets_catalogue, self.max_output_bytes, self.log,
        )
        self.execution.kernels.warm_start = self.warm_start
        self.telemetry.dataset_kernels = self.execution.kernels.datasets_by_kernel  # names in the monitor
        self.mcp = self._mcp_service()
        # jupyter_server builds kernel websocket connections itself: what they use, in one object
        from .websocket import SETTINGS_KEY as CONNECTION_SERVICES, ConnectionServices

        self.settings[CONNECTION_SERVICES] = ConnectionServices(
            self.admission, self.ledger, self.connections, self.refusal_log, self.refusal_flood, self.verdicts,
            self.sandbox, self.kernel_manager.listeners,
        )
        self._start_history()
        self._stop_cleanly_on_sigint()
        if self.hub_place.owner:
            self._check_fit_in_the_hubs_limits()
        # Handlers reach the services above, attributes of this app, via settings["eda_gateway"].

    def _check_fit_in_the_hubs_limits(self) -> None:
        """A Hub-spawned server: say so when the owner's kernels at eda_gateway's limits need
        more than the Hub's spawner gives the whole server (eda_gateway/hub.py)."""
        limits = self.limits_for(self.hub_place.owner)
        for why in hub.limits_that_do_not_fit(*hub.spawner_limits(), limits.max_kernels_per_user,
                                              limits.max_memory_mb, limits.max_cpu_percent):
            self.log.warning("eda_gateway: %s: the Hub's limit comes first; lower EDAGateway.max_kernels_per_user "
                             "or EDASandbox's limits, or raise the spawner's (docs/jupyterhub.md)", why)

    def _stop_cleanly_on_sigint(self) -> None:
        """SIGINT stops the server as SIGTERM does, with its clean-up (kernels, cgroups, disk
        volumes). Without a terminal jupyter_server leaves SIGINT to Python, whose
        KeyboardInterrupt ends the process at once; and JupyterHub stops its services and
        spawned servers with SIGINT. Set when the server starts as a program (``start_app``),
        never for a server embedded in another process (tests, pytest-jupyter): its Ctrl-C
        stays its own."""
        serverapp = self.serverapp
        start_app = serverapp.start_app

        def start_app_stopping_on_sigint() -> None:
            start_app()
            if (threading.current_thread() is threading.main_thread()
                    and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
                signal.signal(signal.SIGINT, serverapp._signal_stop)

        serverapp.start_app = start_app_stopping_on_sigint

    def _claim(self, lock_path: str, setting: str) -> None:
        """This server's alone while it runs (eda_gateway/claims.py); refuse to start otherwise."""
        claim = claims.Claim(lock_path, setting)
        try:
            claim.take(claims.this_server(self.serverapp))
        except claims.Claimed as e:
            if self.identity.personal:
                # one person's labs side by side (as plain jupyter labs share their data dir):
                # nobody else's workspaces or history to keep apart
                self.log.warning("eda_gateway: %s: shared with another server: %s",
                                 "single-user mode" if self.identity.single_user else "one person's server", e)
                return
            self.log.critical("eda_gateway: %s", e)
            sys.exit(f"eda_gateway: {e}")
        self.claims.append(claim)

    def _size_for_connections(self) -> ConnectionLimiter:
        """The connection caps, and a ZMQ context and fd limit that hold what they admit
        (eda_gateway/capacity.py): set now, before the first kernel opens a socket."""
        users = self.expected_users()
        per_user = max([self.max_connections_per_user,
                        *(o.get("max_connections_per_user", 0) for o in self.user_limits.values())])
        kernels = max([self.max_kernels_per_user,
                       *(o.get("max_kernels_per_user", 0) for o in self.user_limits.values())])
        wanted = self.max_connections_total or users * per_user
        import zmq

        contexts = [self.kernel_manager.context, zmq.Context.instance()]
        chosen = capacity.apply(capacity.plan(wanted, users * kernels), users * kernels, contexts, self.log)
        return ConnectionLimiter(lambda u: self.limits_for(u).max_connections_per_user, chosen.connections)

    # Users assumed when the identity provider cannot list them (docs/rate_limiting.md).
    UNKNOWN_USERS = 64

    def expected_users(self) -> int:
        if self.identity.single_user:
            return 1
        tokens = getattr(self.serverapp.identity_provider, "user_tokens", None)
        if isinstance(tokens, dict) and tokens:
            return len(tokens) + len(set(self.admin_users) - set(tokens))
        return self.UNKNOWN_USERS

    def _start_disk_quotas(self) -> DiskQuotas | None:
        """One filesystem per user (eda_gateway/quotas.py); fail closed in multi-user mode."""
        config = self.sandbox_config
        if config.max_disk_mb == 0:
            self.log.info("eda_gateway: no disk quota (%s = 0)", DISK_SETTING)
            return None
        quotas = DiskQuotas(
            config.disk_root or os.path.join(self.serverapp.data_dir, "eda_disks"),
            lambda username: self.limits_for(username).max_disk_mb,
            self._folders_of,
            self.log,
            on_full=self._disk_full,
            uid_of=self.isolation.uid_of_files,
        )
        why = quotas.unavailable()
        if why and self.identity.personal:
            # a personal server, not run as root: its one user's disk is theirs anyway
            self.log.warning("eda_gateway: no disk quota: %s = %s but %s", DISK_SETTING, config.max_disk_mb, why)
            return None
        try:
            quotas.start()
        except DiskQuotaUnavailable as e:
            self.log.critical("eda_gateway: %s", e)
            sys.exit(f"eda_gateway: {e}")
        self.log.info("eda_gateway: disk quota %s MiB per user, volumes under %s", config.max_disk_mb, quotas.root)
        return quotas

    def _folders_of(self, username: str) -> dict:
        """What a user's disk volume holds: their workspace, and their content folder (admins
        have the whole root_dir instead: not theirs alone, so not in their volume)."""
        content = None
        if not self.is_admin(username):
            content = os.path.join(os.path.abspath(self.serverapp.root_dir), user_id(username))
        return {"workspace": self.workspaces.path_for(username), "content": content}

    def _disk_full(self, username: str, details: dict) -> None:
        limit_mb = self.limits_for(username).max_disk_mb
        self.verdicts.publish(Verdict(
            ename=DISK_QUOTA_EXCEEDED,
            evalue=f"{username}'s disk quota of {limit_mb} MiB ({DISK_SETTING}) is full",
            kernel_id="",
            user=username,
            details=details,
        ))

    def _isolation(self):
        from .isolation.service import Isolation  # server-side only (eda_gateway/isolation/__init__.py)

        catalogue = self.datasets_catalogue
        return Isolation(
            self.isolation_config, self.log,
            server_root=self.serverapp.root_dir,
            folders=self.folders,
            datasets_for=lambda owner: [d.path for d in catalogue.for_user(owner)],
            single_user=self.identity.personal,
        )

    def _start_isolation(self) -> None:
        """Pick the layers for this server (log line names them); exit if an explicit choice cannot be had."""
        try:
            self.isolation.start()
        except IsolationUnavailable as e:
            self.log.critical("eda_gateway: bad configuration: %s", e)
            sys.exit(f"eda_gateway: bad configuration: {e}")

    def _start_sandbox(self) -> None:
        """Confinement before any kernel can start; refuse to run without a forced backend.
        Then the sampler, the metrics and system-stats, which read the sandbox."""
        from . import metrics

        self.sandbox = Sandbox(
            self.sandbox_config, self.log,
            limits_for=self.limits_for,
            verdicts=self.verdicts,
            watchdog_peers=WatchdogPeers(self.kernel_manager, self.ledger, self.limits_for, self.verdicts),
        )
        self.telemetry = EDATelemetry(
            parent=self,
            kernels=self.kernel_manager,
            sandbox=self.sandbox,
            limits_for=self.limits_for,
            active_executions=self.admission.active_executions,
        )
        try:
            self.sandbox.start()
        except SandboxUnavailable as e:
            self.log.critical("eda_gateway: %s", e)
            sys.exit(f"eda_gateway: {e}")
        metrics.install(enforcement=self.sandbox.enforcement, telemetry=self.telemetry, verdicts=self.verdicts,
                        bus=self.execution_bus)
        self.peers = self._server_directory()
        self.system_stats = SystemStats(self.telemetry, self.sandbox, self.isolation)

    def _start_history(self) -> None:
        """Usage history (SQLite, own writer thread) and the jupyter_events activity log."""
        path = self.history_db or os.path.join(self.serverapp.data_dir, "eda_gateway_history.sqlite")
        if not path.startswith(URL_SCHEMES):  # a PostgreSQL URL is shared by several servers on purpose
            try:
                os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
            except OSError as e:
                self.log.critical("eda_gateway: bad configuration: EDAGateway.history_db: %s", e)
                sys.exit(f"eda_gateway: bad configuration: EDAGateway.history_db: {e}")
            self._claim(os.path.abspath(path) + ".lock", "EDAGateway.history_db")  # one server's users only
        self.history = HistoryStore(path, self.history_retention_days, self.history_max_rows,
                                    server=self.the_server_name())
        try:
            self.history.start()
        except RuntimeError as e:
            self.log.critical("eda_gateway: bad configuration: EDAGateway.history_db: %s", e)
            sys.exit(f"eda_gateway: bad configuration: EDAGateway.history_db: {e}")
        event_logger = getattr(self.serverapp, "event_logger", None)
        if event_logger is not None:
            register_schemas(event_logger)
        self.activity = ActivityLog(event_logger, self.history, self.kernel_manager.owner_of)
        self.execution_bus.observe(self.activity.on_execution)
        self.verdicts.add_listener(self.activity.on_verdict)
        self.kernel_manager.listeners.append(self.activity.on_kernel_event)
        self.activity.watch_logins(self.serverapp.identity_provider)
        self.usage_recorder = UsageRecorder(self.history, self.history_sample_interval)
        self.telemetry.listeners.append(self.usage_recorder.on_snapshot)

    def _on_kernel_event(self, event: str, kernel_id: str, owner: str) -> None:
        if event == "stopped":
            self.verdicts.forget(kernel_id)

    def initialize_handlers(self):
        from .handlers import all_handlers, inactive_handlers

        self.handlers.extend(all_handlers() if self.active else inactive_handlers())

    async def _start_jupyter_server_extension(self, serverapp):
        await super()._start_jupyter_server_extension(serverapp)
        self._guard_http(serverapp)
        from .handlers.ratelimit_headers import RetryAfterTransform

        if RetryAfterTransform not in serverapp.web_app.transforms:  # authentication backoff's 429s
            serverapp.web_app.transforms.append(RetryAfterTransform)
        warn_weak_tokens = getattr(serverapp.identity_provider, "warn_weak_tokens", None)
        if warn_weak_tokens is not None:
            warn_weak_tokens(serverapp.log)
        if not self.active:
            return
        # every extension's routes exist by now
        guard_lab_management(serverapp.web_app)
        http_limits.lean_contents_bodies(serverapp.web_app)
        settings = serverapp.web_app.settings
        if settings.get("log_function") is not None:  # a flood of 429s must not flood the log
            settings["log_function"] = quiet_refusals(settings["log_function"], self.refusal_log)
        self._tasks.append(asyncio.create_task(self._cleanup_loop()))
        self._tasks.append(asyncio.create_task(self._cull_loop()))
        self._tasks.append(asyncio.create_task(self._refusal_summary_loop()))
        self._tasks.append(asyncio.create_task(self.mcp.serve()))
        if hasattr(self.admission.store, "renew"):
            self._tasks.append(asyncio.create_task(self._lease_renewal_loop()))
        self._tasks.extend(self.sandbox.start_watchdog())
        self._tasks.append(self.telemetry.start())
        self.log.info(
            "eda_gateway: workspaces under %s, clean-up every %ss of files older than %ss",
            self.workspace_root,
            self.cleanup_interval,
            self.temp_file_max_age,
        )

    def _guard_http(self, serverapp) -> None:
        """Read timeouts and the budget of request bodies (eda_gateway/http_limits.py)."""
        http_server = getattr(serverapp, "http_server", None)
        if http_server is None:  # a server started without its own HTTPServer (tests, embedding)
            return
        self.body_budget = http_limits.BodyBudget(self.max_body_bytes_in_flight,
                                                  self.max_body_bytes_in_flight_per_user)
        http_limits.install(http_server, self.body_budget, self.request_read_timeout, serverapp.max_body_size,
                            self.log)
        self.log.info("eda_gateway: request read timeout %ss; request bodies in flight: %s MiB, %s MiB per user",
                      self.request_read_timeout, self.max_body_bytes_in_flight // http_limits.MIB,
                      self.max_body_bytes_in_flight_per_user // http_limits.MIB)

    async def stop_extension(self):
        # safe after any partial start: each step only undoes what was started
        for task in getattr(self, "_tasks", ()):
            task.cancel()
        # kernels first, then every cgroup/process this server's sandbox created
        if getattr(self, "sandbox", None) is not None:
            await self.sandbox.stop(getattr(self, "kernel_manager", None))
        if getattr(self, "isolation", None) is not None:
            self.isolation.stop()
        if getattr(self, "disk_quotas", None) is not None:
            self.disk_quotas.release_all()  # after the kernels: nothing holds the volumes now
        # last: kernel stops above are history too
        if getattr(self, "usage_recorder", None) is not None:
            self.usage_recorder.flush()
        if getattr(self, "history", None) is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.history.stop)
        if getattr(self, "mcp", None) is not None:
            self.mcp.stop()
        if getattr(self, "peers", None) is not None:
            try:  # leave the admin view now, not when the heartbeat expires
                await asyncio.get_running_loop().run_in_executor(None, self.peers.withdraw)
            except Exception as e:
                self.log.debug("eda_gateway: heartbeat not withdrawn: %s", e)
        for claim in getattr(self, "claims", ()):
            claim.release()
        await super().stop_extension()

    def cull_check_seconds(self) -> float:
        """How often idle kernels are looked for: a quarter of the shortest idle timeout."""
        timeouts = [self.cull_idle_after, *(o["cull_idle_after"] for o in self.user_limits.values()
                                            if "cull_idle_after" in o)]
        shortest = min((t for t in timeouts if t > 0), default=0)
        return min(60.0, max(0.5, shortest / 4)) if shortest else 0

    async def _cull_loop(self):
        interval = self.cull_check_seconds()
        if not interval:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                await self.kernel_manager.cull_idle()
            except Exception:
                self.log.exception("eda_gateway: culling idle kernels failed")

    def _mcp_service(self):
        """The MCP endpoint's tools over the execution service (eda_gateway/agents.py)."""
        from .agents import AgentTools
        from .handlers.mcp import MCPService
        from .handlers.ratelimit import render_status

        def kernels_of(username: str) -> list[dict]:
            km = self.kernel_manager
            rows = []
            for kid in km.kernels_of(username):
                kernel = km.get_kernel(kid)
                rows.append({"kernel_id": kid, "name": kernel.kernel_name,
                             "execution_state": getattr(kernel, "execution_state", None),
                             "dataset_kernel": self.execution.kernels.manages(kid)})
            return rows

        tools = AgentTools(self.execution, self.datasets_catalogue, kernels_of, self.ownership.may_use_kernel,
                           lambda username: render_status(self.admission.usage(username)))
        return MCPService(tools, max_body_bytes=self.max_code_bytes + 64 * 1024)

    def _admission_store(self):
        """The budget's store: this server's memory, or Redis shared with other servers."""
        config = self.rate_config
        if not config.store_url:
            return MemoryStore()
        from .redis_store import RedisStore

        store = RedisStore(config.store_url, lease_ttl=config.lease_ttl)

        def changed(available: bool, why: str) -> None:
            ADMISSION_STORE_UP.set(1 if available else 0)
            if available:
                self.log.warning("eda_gateway: the admission store is back: %s", why)
            else:
                ADMISSION_STORE_FAILURES.inc()
                self.log.error("eda_gateway: the admission store is out of reach (%s): executions are %s until "
                               "it answers", why, "admitted uncounted" if config.store_failure == "open" else
                               "refused (AdmissionUnavailable)")

        store.on_change = changed
        ADMISSION_STORE_UP.set(1 if store.ping() else 0)
        self.log.info("eda_gateway: execution budget in %s, shared with every server that uses it "
                      "(leases live %.0f s unless renewed; when it is out of reach executions are %s)",
                      store.url, config.lease_ttl, "admitted" if config.store_failure == "open" else "refused")
        return store

    def the_server_name(self) -> str:
        return self.server_name or f"{socket.gethostname()}:{self.serverapp.port}"

    def _server_directory(self):
        """With a shared store: this server's heartbeat for the admin view across servers
        (eda_gateway/peers.py), published at most every heartbeat_interval from the telemetry."""
        client = getattr(self.admission.store, "client", None)
        if client is None:
            return None
        from .peers import ServerDirectory, kernels_of

        url = self.server_url or os.environ.get("JUPYTERHUB_PUBLIC_URL") or self.serverapp.connection_url
        interval = self.heartbeat_interval
        directory = ServerDirectory(client, self.the_server_name(), url, ttl=3 * interval)
        last = {"at": 0.0}

        def beat(snapshot) -> None:
            now = time.monotonic()
            if now - last["at"] < interval:
                return
            last["at"] = now
            future = asyncio.get_running_loop().run_in_executor(None, directory.publish, kernels_of(snapshot))
            future.add_done_callback(lambda f: f.exception() and self.log.debug(
                "eda_gateway: heartbeat not published: %s", f.exception()))

        self.telemetry.listeners.append(beat)
        return directory

    async def _lease_renewal_loop(self):
        """Keep this server's leases in the shared store alive while their executions run."""
        store = self.admission.store
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(store.lease_ttl / 3)
            try:
                await loop.run_in_executor(None, store.renew)
            except Exception:
                self.log.exception("eda_gateway: renewing leases failed")

    async def _refusal_summary_loop(self):
        while True:  # a flood's summary line comes even once the flood has stopped
            await asyncio.sleep(self.refusal_log.interval / 6)
            self.refusal_log.tick()

    def refusal_flood(self) -> RefusalFlood:
        """A fresh refusal meter for one kernel connection."""
        r = self.rate_config
        return RefusalFlood(r.refusal_flood_slow_after, r.refusal_flood_close_after, r.refusal_flood_window,
                            r.refusal_flood_delay)

    async def _cleanup_loop(self):
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.cleanup_interval)
            try:
                report = await loop.run_in_executor(None, self.workspaces.cleanup, self.temp_file_max_age)
                if report.removed_files or report.errors:
                    self.log.info("eda_gateway: workspace clean-up %s", report)
            except Exception:
                self.log.exception("eda_gateway: workspace clean-up failed")

    # --- questions the services ask -----------------------------------------

    def is_admin(self, username: str | None) -> bool:
        return self.roles.is_admin(username)

    def base_limits(self) -> Limits:
        s, r = self.sandbox_config, self.rate_config
        return Limits(
            max_execution_time=s.max_execution_time,
            max_memory_mb=s.max_memory_mb,
            max_cpu_percent=s.max_cpu_percent,
            max_processes=s.max_processes,
            max_open_files=s.max_open_files,
            max_disk_mb=s.max_disk_mb,
            max_executions_per_minute=r.max_executions_per_minute,
            max_concurrent_executions=r.max_concurrent_executions,
            window_seconds=r.window_seconds,
            max_executions_per_day=r.max_executions_per_day,
            max_kernels_per_user=self.max_kernels_per_user,
            max_connections_per_user=self.max_connections_per_user,
            cull_idle_after=self.cull_idle_after,
        )

    def limits_for(self, username: str) -> Limits:
        return self.policy.for_user(username)

    def groups_of(self, username: str) -> list[str]:
        """The configured groups (EDAGateway.groups) and, under JupyterHub, the Hub's."""
        configured = self.policy.groups_of(username) if hasattr(self, "policy") else []
        hub_groups = self.hub_membership.groups_of(username) if self.hub_groups else frozenset()
        return sorted(set(configured) | hub_groups)


main = launch_new_instance = EDAGateway.launch_instance
