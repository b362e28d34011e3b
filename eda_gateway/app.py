"""The eda_gateway server extension: configuration, wiring and background tasks."""

from __future__ import annotations

import asyncio
import os
import sys

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Float, Int, List, Set, TraitError, Unicode, validate
from traitlets.utils.importstring import import_item

from . import logscrub
from .auth import EDAAuthorizer
from .handlers.lab_management import guard_lab_management
from .contents import EDAContentsManager
from .datasets import DatasetCatalogue, validate_datasets
from .execution import ExecutionService
from .activity import ActivityLog, UsageRecorder, register_schemas
from .history import HistoryStore
from .isolation import start_isolation
from .admission import SAFETY_MARGIN_SECONDS, AdmissionService
from .kernels import EDAKernelManager
from .lease_keeper import LeaseKeeper
from .limits import EDARateLimiter, EDASandbox, LimitPolicy, Limits, require_positive, validate_user_limits
from .sessions import EDASessionManager
from .sandbox import Sandbox, SandboxUnavailable, install_factory
from .telemetry import EDATelemetry, Telemetry
from .verdicts import VerdictBus
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

    classes = [EDASandbox, EDARateLimiter, EDATelemetry]

    admin_users = Set(Unicode(), config=True, help="Usernames that see and act on everything.")
    groups = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        config=True,
        help="Named groups of users: {'analysts': ['alice', 'bob']}; '@analysts' in user_limits.",
    )
    max_kernels_per_user = Int(4, config=True, help="Kernels one user may have (pending starts count).")
    workspace_root = Unicode(
        "/tmp", config=True, help="Each user gets <workspace_root>/eda_user_<user_id>/ (mode 0700)."
    )
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
    max_code_bytes = Int(1024 * 1024, config=True, help="Largest code body the REST execution API accepts.")
    max_output_bytes = Int(
        1024 * 1024,
        config=True,
        help="Output of one REST execution kept in its answer; the rest is dropped with a marker.",
    )

    history_db = Unicode(
        "",
        config=True,
        help="SQLite file of the usage history and activity log (survives restarts). "
        "Default: eda_gateway_history.sqlite in the server's Jupyter data directory.",
    )
    history_retention_days = Float(30, config=True, help="History older than this (days) is purged.")
    history_max_rows = Int(
        1_000_000, config=True, help="Most events (and most usage samples) kept; the oldest go first."
    )
    history_sample_interval = Float(
        60, config=True, help="Seconds between two usage samples (peak memory, mean CPU per user) in the history."
    )

    @validate(
        "max_kernels_per_user", "max_code_bytes", "max_output_bytes", "cleanup_interval", "temp_file_max_age",
        "history_retention_days", "history_max_rows", "history_sample_interval",
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
        try:
            super()._link_jupyter_server_extension(serverapp)
            self.sandbox_config = EDASandbox(parent=self)
            self.rate_config = EDARateLimiter(parent=self)
            self.telemetry_config = EDATelemetry(parent=self)
        except TraitError as e:
            # The extension manager would only log this and start an unprotected
            # server: refuse to start instead, naming the setting.
            serverapp.log.critical("eda_gateway: bad configuration: %s", e)
            sys.exit(f"eda_gateway: bad configuration: {e}")
        serverapp.kernel_manager_class = EDAKernelManager
        serverapp.session_manager_class = EDASessionManager
        serverapp.authorizer_class = EDAAuthorizer
        install_factory(serverapp)  # every kernel starts through the sandbox's provisioner
        from .websocket import EDAKernelWebsocketConnection

        self._use_unless_configured(serverapp, "kernel_websocket_connection_class", EDAKernelWebsocketConnection,
                                    "notebook executions are not admitted (no rate limit over websockets)")
        self._use_unless_configured(serverapp, "contents_manager_class", EDAContentsManager,
                                    "files are not kept per user")
        # jupyter_server reads up to 512 MB of body into memory per request (and holds ~3x
        # that while decoding it): a few uploads at once and the shared server is gone.
        # JupyterLab uploads big files in 1 MB chunks, so a smaller cap costs users nothing.
        for trait in ("max_body_size", "max_buffer_size"):
            if trait not in serverapp.config.get("ServerApp", {}):
                setattr(serverapp, trait, MAX_BODY_BYTES)
        for hook in self.link_hooks:
            hook(self, serverapp)

    @staticmethod
    def _use_unless_configured(serverapp, trait: str, ours: type, lost: str) -> None:
        """An admin's own class wins; say so loudly unless it builds on ours."""
        configured = serverapp.config.get("ServerApp", {}).get(trait)
        if configured is None:
            setattr(serverapp, trait, ours)
            return
        chosen = import_item(configured) if isinstance(configured, str) else configured
        if not (isinstance(chosen, type) and issubclass(chosen, ours)):
            serverapp.log.warning("eda_gateway: ServerApp.%s is configured to %r, not a subclass of %s.%s: %s",
                                  trait, configured, ours.__module__, ours.__qualname__, lost)

    # Later services register here to adjust the server before it starts.
    link_hooks: list = []

    # --- wiring --------------------------------------------------------------

    def initialize_settings(self):
        self._tasks: list[asyncio.Task] = []
        try:
            self._wire_services()
        except Exception as e:
            # jupyter_server would log this and serve on without eda_gateway's
            # protection: a shared server must not start half-guarded.
            self.log.critical("eda_gateway: failed to start its services", exc_info=True)
            sys.exit(f"eda_gateway: failed to start: {e}")

    def _wire_services(self):
        logscrub.install(self.serverapp.log, self.log)
        self.policy = LimitPolicy(self.base_limits(), self.user_limits, self.groups)
        self.workspaces = Workspaces(self.workspace_root)
        os.makedirs(self.workspace_root, exist_ok=True)
        self.kernel_manager = self.serverapp.kernel_manager
        self.session_manager = self.serverapp.session_manager
        for manager in (self.kernel_manager, self.session_manager, self.serverapp.contents_manager):
            manager.eda_gateway = self
        self.settings["eda_gateway"] = self
        self.verdicts = VerdictBus()
        self.kernel_manager.listeners.append(self._on_kernel_event)
        # one per-user execution budget for every path; leases end with their kernel
        self.admission = AdmissionService(
            self.limits_for,
            expiry_extra_seconds=self.sandbox_config.interrupt_grace + SAFETY_MARGIN_SECONDS,
        )
        self.lease_keeper = LeaseKeeper(self.admission, self.kernel_manager)
        self.kernel_manager.listeners.append(self.lease_keeper.on_kernel_event)
        self.verdicts.add_listener(self.lease_keeper.on_verdict)
        self._start_sandbox()
        self.datasets_catalogue = DatasetCatalogue(self.datasets, self.is_admin, self.groups_of)
        self.isolation = start_isolation(self)  # kernels must not reach each other (docs/isolation.md)
        self.execution = ExecutionService(self, self.datasets_catalogue, self.max_output_bytes)
        self._start_history()
        # Services wired below (admission, sandbox, telemetry, ...) are
        # attributes of this app; handlers reach them via settings["eda_gateway"].

    def _start_sandbox(self) -> None:
        """Confinement before any kernel can start; refuse to run without a forced backend."""
        from . import metrics

        self.sandbox = Sandbox(self, self.sandbox_config, self.log)
        try:
            self.sandbox.start()
        except SandboxUnavailable as e:
            self.log.critical("eda_gateway: %s", e)
            sys.exit(f"eda_gateway: {e}")
        self.telemetry = Telemetry(self, self.telemetry_config.interval, self.log)
        metrics.install(self)

    def _start_history(self) -> None:
        """Usage history (SQLite, own writer thread) and the jupyter_events activity log."""
        path = self.history_db or os.path.join(self.serverapp.data_dir, "eda_gateway_history.sqlite")
        self.history = HistoryStore(path, self.history_retention_days, self.history_max_rows)
        try:
            self.history.start()
        except RuntimeError as e:
            self.log.critical("eda_gateway: bad configuration: EDAGateway.history_db: %s", e)
            sys.exit(f"eda_gateway: bad configuration: EDAGateway.history_db: {e}")
        event_logger = getattr(self.serverapp, "event_logger", None)
        if event_logger is not None:
            register_schemas(event_logger)
        self.activity = ActivityLog(event_logger, self.history, self.kernel_manager.owner_of)
        self.admission.add_listener(self.activity.on_admission)
        self.verdicts.add_listener(self.activity.on_verdict)
        self.kernel_manager.listeners.append(self.activity.on_kernel_event)
        self.activity.watch_logins(self.serverapp.identity_provider)
        self.usage_recorder = UsageRecorder(self.history, self.history_sample_interval)
        self.telemetry.listeners.append(self.usage_recorder.on_snapshot)

    def _on_kernel_event(self, event: str, kernel_id: str, owner: str) -> None:
        if event == "stopped":
            self.verdicts.forget(kernel_id)

    def initialize_handlers(self):
        from .handlers import all_handlers

        self.handlers.extend(all_handlers())

    async def _start_jupyter_server_extension(self, serverapp):
        await super()._start_jupyter_server_extension(serverapp)
        # every extension's routes exist by now
        guard_lab_management(serverapp.web_app)
        self._tasks.append(asyncio.create_task(self._cleanup_loop()))
        self._tasks.extend(self.sandbox.start_watchdog())
        self._tasks.append(self.telemetry.start())
        self.log.info(
            "eda_gateway: workspaces under %s, clean-up every %ss of files older than %ss",
            self.workspace_root,
            self.cleanup_interval,
            self.temp_file_max_age,
        )

    async def stop_extension(self):
        for task in self._tasks:
            task.cancel()
        # kernels first, then every cgroup/process this server's sandbox created
        await self.sandbox.stop(self.kernel_manager)
        self.isolation.stop()
        # last: kernel stops above are history too
        self.usage_recorder.flush()
        await asyncio.get_running_loop().run_in_executor(None, self.history.stop)
        await super().stop_extension()

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
        return bool(username) and username in self.admin_users

    def base_limits(self) -> Limits:
        s, r = self.sandbox_config, self.rate_config
        return Limits(
            max_execution_time=s.max_execution_time,
            max_memory_mb=s.max_memory_mb,
            max_cpu_percent=s.max_cpu_percent,
            max_processes=s.max_processes,
            max_executions_per_minute=r.max_executions_per_minute,
            max_concurrent_executions=r.max_concurrent_executions,
            window_seconds=r.window_seconds,
            max_kernels_per_user=self.max_kernels_per_user,
        )

    def limits_for(self, username: str) -> Limits:
        return self.policy.for_user(username)

    def groups_of(self, username: str) -> list[str]:
        return self.policy.groups_of(username)


main = launch_new_instance = EDAGateway.launch_instance
