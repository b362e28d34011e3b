"""Owner-aware kernel manager: each kernel belongs to the user who started it.

Starts kernels in the owner's private workspace with a merged environment,
enforces ``max_kernels_per_user`` (pending starts count, restarts do not; at the
quota an idle kernel is reclaimed), culls idle kernels, filters listings, and tells
listeners when a kernel starts, restarts ("restarting" before, "restarted" after),
dies ("died": the auto-restarter brings it back; "dead": it gave up), is culled or
reclaimed, or stops ("stopping" before a shutdown, "stopped"). Admission uses this
so that no lease outlives its kernel, and eda_gateway/endings.py so that no
execution is left without an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import uuid
from collections import Counter
from collections.abc import Callable

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from traitlets import TraitError

from .authorization import Actor, Ownership, Roles
from .contents import UserFolders, folder_for, inside
from .limits import Limits
from .users import current_actor, current_username

# Server secrets a kernel must never inherit from the server's environment.
_SECRET_ENV = ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE", "JPY_API_TOKEN", "JUPYTERHUB_API_TOKEN")

KernelListener = Callable[[str, str, str], None]  # (event, kernel_id, owner)


def _require_uuid(kernel_id: str) -> str:
    try:
        return str(uuid.UUID(str(kernel_id)))
    except ValueError:
        raise HTTPError(400, "kernel_id must be a UUID") from None


class KernelQuotaExceeded(HTTPError):
    """403: the owner has ``max_kernels_per_user`` kernels, none of them idle to reclaim."""

    def __init__(self, limit: int, owner: str) -> None:
        # also as the status line's reason: clients that show only that (raise_for_status) name the limit
        super().__init__(403, f"max_kernels_per_user ({limit}) reached for {owner}: shut down a kernel first",
                         reason=f"Forbidden: max_kernels_per_user ({limit}) reached")
        self.limit = limit


class EDAKernelManager(AsyncMappingKernelManager):
    """AsyncMappingKernelManager with owners, quotas and private workspaces."""

    # How long a shutdown waits for a restart in progress (the sandbox restarts
    # kernels it killed) before shutting the kernel down anyway.
    restart_wait_seconds = 60.0

    # What jupyter_server keeps for a client that left, to replay when it comes back.
    # Upstream it is an unbounded list: a kernel printing with no tab open grew the
    # server without end.
    offline_buffer_bytes = 16 * 1024 * 1024

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._owners: dict[str, str] = {}
        self._pending_starts: Counter[str] = Counter()
        self._reclaiming: set[str] = set()  # idle kernels being shut down to make room
        self.listeners: list[KernelListener] = []

    def start_buffering(self, kernel_id, session_key, channels):
        super().start_buffering(kernel_id, session_key, channels)
        buffer_info = self._kernel_buffers.get(kernel_id)
        if not self.buffer_offline_messages or not buffer_info or buffer_info.get("channels") is not channels:
            return
        room = [self.offline_buffer_bytes]

        def buffer_msg(channel, msg_parts):
            size = sum(len(part) for part in msg_parts)
            if size > room[0]:
                room[0] = 0  # full: drop this and all that follows (a replay with gaps would mislead)
                return
            room[0] -= size
            buffer_info["buffer"].append((channel, msg_parts))

        for channel, stream in channels.items():
            stream.on_recv(functools.partial(buffer_msg, channel))

    # --- collaborators (EDAGateway._wire_services sets them through ``use``) ---

    # Until eda_gateway wires the shared service: nobody is an admin, only owners
    # (and the server itself) act on their kernels.
    ownership: Ownership | None = None
    launch_chain = None  # eda_gateway.sandbox.launcher.LaunchChain; without it no kernel starts
    folders: UserFolders | None = None  # without: kernels start in the server's folders, no workspace
    limits_for: Callable[[str], Limits] | None = None  # without: no kernel quota, no culling
    pending_on: Callable[[str], object] = staticmethod(lambda kernel_id: ())  # admitted, unfinished executions
    default_owner = ""  # whose a kernel started outside any request is (single-user mode: the owner's)
    reclaim_idle_at_quota = True

    def use(self, *, ownership: Ownership, launch_chain, folders: UserFolders,
            limits_for: Callable[[str], Limits], pending_on: Callable[[str], object],
            default_owner: str, reclaim_idle_at_quota: bool) -> None:
        """The services this manager works with (all of them, at once)."""
        self.ownership = ownership
        self.launch_chain = launch_chain
        self.folders = folders
        self.limits_for = limits_for
        self.pending_on = pending_on
        self.default_owner = default_owner
        self.reclaim_idle_at_quota = reclaim_idle_at_quota

    def folders_of_owner(self, owner: str) -> list[str]:
        """What a kernel of ``owner`` may name by path: their content folder and workspace."""
        if self.folders is None:
            return []
        return [self.folders.content_of(owner), self.folders.workspace_of(owner)]

    def _ownership(self) -> Ownership:
        return self.ownership or Ownership(Roles(()), self.owner_of, lambda session_id: None)

    def owner_of(self, kernel_id: str) -> str | None:
        return self._owners.get(kernel_id)

    def kernels_of(self, username: str) -> list[str]:
        return [kid for kid, owner in self._owners.items() if owner == username and kid in self]

    def may_act_on(self, kernel_id: str, actor: Actor) -> bool:
        return self._ownership().may_use_kernel(actor, kernel_id)

    def _emit(self, event: str, kernel_id: str, owner: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(event, kernel_id, owner)
            except Exception:
                self.log.exception("eda_gateway: kernel listener failed on %s", event)

    # --- starting ------------------------------------------------------------

    def kernel_env(self, owner: str, workspace: str, env: dict | None) -> dict:
        """The server's environment, the caller's additions, then ours (never replaced)."""
        merged = {**os.environ, **(env or {})}
        for name in _SECRET_ENV:
            merged.pop(name, None)
        merged.update(
            TMPDIR=workspace,
            EDA_USER=owner,
            EDA_WORKSPACE=workspace,
        )
        return merged

    def cwd_for_path(self, path, **kwargs):
        return self._cwd_in_user_root(current_actor(), path)

    def _cwd_in_user_root(self, actor: Actor, path: str) -> str:
        root = folder_for(self.root_dir, actor, self.ownership, self.folders.quotas if self.folders else None)
        os_path = os.path.abspath(os.path.join(root, *str(path).strip("/").split("/")))
        if not inside(os_path, root):  # `..` or a symlink out of the folder
            raise HTTPError(400, "kernel path is outside your folder")
        # documents may live elsewhere than kernels: walk up to an existing folder
        while not os.path.isdir(os_path) and os_path != root:
            os_path = os.path.dirname(os_path)
        return os_path

    async def _make_room(self, owner: str) -> None:
        """Below the owner's kernel quota, by reclaiming their least recently used idle
        kernel if allowed; else a 403 naming the limit."""
        if self.limits_for is None:
            return
        limit = self.limits_for(owner).max_kernels_per_user
        while len(self.kernels_of(owner)) + self._pending_starts[owner] >= limit:
            idle = self.reclaim_idle_at_quota and sorted(
                (since, kid) for kid in self.kernels_of(owner) if (since := self.idle_since(kid))
            )
            if not idle:
                raise KernelQuotaExceeded(limit, owner)
            kernel_id = idle[0][1]
            self.log.info("eda_gateway: %s is at max_kernels_per_user (%s): reclaiming idle kernel %s",
                          owner, limit, kernel_id)
            self._emit("reclaimed", kernel_id, owner)
            self._reclaiming.add(kernel_id)  # a start beside this one must not pick it too
            try:
                await self.shutdown_kernel(kernel_id)
            finally:
                self._reclaiming.discard(kernel_id)

    def idle_since(self, kernel_id: str):
        """When the kernel last did anything, if nobody uses it now: not busy, no client
        connected, nothing admitted and waiting on it (jupyter_server's culler's rules,
        plus admission's). None while it is in use."""
        kernel = self._kernels.get(kernel_id)
        if kernel is None or kernel_id in self._pending_kernels or kernel_id in self._reclaiming:
            return None
        if getattr(kernel, "shutting_down", False):
            return None
        if getattr(kernel, "execution_state", None) == "busy":
            return None  # "starting" too is idle: a kernel nobody connected to never says more
        if self._kernel_connections.get(kernel_id, 0) and not self.cull_connected:
            return None
        if self.pending_on(kernel_id):
            return None
        try:
            return kernel.last_activity
        except TraitError:  # set once the start has finished
            return None

    async def cull_idle(self, now=None) -> list[str]:
        """Shut down kernels idle for longer than their owner's ``cull_idle_after`` (0: never)."""
        now = now or utcnow()
        culled = []
        for kernel_id, owner in list(self._owners.items()):
            timeout = self.limits_for(owner).cull_idle_after if self.limits_for and owner else 0
            since = self.idle_since(kernel_id)
            if timeout <= 0 or since is None or (now - since).total_seconds() <= timeout:
                continue
            self.log.info("eda_gateway: culling kernel %s of %s: idle for over %g s", kernel_id, owner, timeout)
            self._emit("culled", kernel_id, owner)
            try:
                await self.shutdown_kernel(kernel_id)
                culled.append(kernel_id)
            except Exception:
                self.log.exception("eda_gateway: culling kernel %s failed", kernel_id)
        return culled

    def pre_start_kernel(self, kernel_name, kwargs):
        km, kernel_name, kernel_id = super().pre_start_kernel(kernel_name, kwargs)
        # jupyter_client lists a kernel once its process started, jupyter_server marks it a loop
        # turn later: a listing in between raised TraitError (a 500), likely beside a warm start
        km.execution_state = "starting"
        km.last_activity = utcnow()
        return km, kernel_name, kernel_id

    async def start_kernel(self, *, kernel_id=None, path=None, eda_owner=None, **kwargs):
        owner = eda_owner or current_username() or self.default_owner
        # eda_owner: the REST runner, starting for a user it has authorized
        actor = eda_owner or current_actor()
        if kernel_id is not None:
            kernel_id = _require_uuid(kernel_id)
            if kernel_id in self:
                if not self.may_act_on(kernel_id, actor):
                    raise HTTPError(403, "This kernel belongs to another user")
                return kernel_id
        await self._make_room(owner)
        kernel_id = kernel_id or str(uuid.uuid4())
        self._pending_starts[owner] += 1
        self._owners[kernel_id] = owner
        try:
            workspace = self.folders.ensure_workspace(owner) if self.folders and owner else None
            if workspace:
                kwargs["env"] = self.kernel_env(owner, workspace, kwargs.get("env"))
            if path is not None:
                kwargs["cwd"] = self._cwd_in_user_root(owner or actor, path)
            elif workspace:
                kwargs["cwd"] = workspace
            kernel_id = await super().start_kernel(kernel_id=kernel_id, **kwargs)
        except BaseException:
            self._owners.pop(kernel_id, None)
            raise
        finally:
            self._pending_starts[owner] -= 1
            if self._pending_starts[owner] <= 0:
                del self._pending_starts[owner]
        self._watch_deaths(kernel_id)
        self._emit("started", kernel_id, owner)
        return kernel_id

    def _watch_deaths(self, kernel_id: str) -> None:
        """The auto-restarter's callbacks, first in line: "died" while the old process's
        state (why it died, what it was running) can still be read."""
        for restarter_event, event in (("restart", "died"), ("dead", "dead")):
            self.add_restart_callback(
                kernel_id, functools.partial(self._emit_owned, event, kernel_id), restarter_event
            )

    def _emit_owned(self, event: str, kernel_id: str) -> None:
        self._emit(event, kernel_id, self._owners.get(kernel_id, ""))

    # --- listing, restart, removal ------------------------------------------

    def list_kernels(self):
        actor = current_actor()
        return [k for k in super().list_kernels() if self.may_act_on(k["id"], actor)]

    async def restart_kernel(self, kernel_id, now=False, *, answered=False):
        """``answered``: a verdict already ended what the kernel ran (the sandbox's kills);
        what was sent since waits for the new process, so nothing is ended here."""
        if kernel_id in self and not answered:
            self._emit("restarting", kernel_id, self._owners.get(kernel_id, ""))
        result = await super().restart_kernel(kernel_id, now=now)
        self._emit("restarted", kernel_id, self._owners.get(kernel_id, ""))
        return result

    async def _async_shutdown_kernel(self, kernel_id, now=False, restart=False):
        # jupyter_client reads ``ready.exception()`` of a kernel that is restarting
        # (its ``ready`` is pending) and raises InvalidStateError: a 500 on DELETE
        # and a failed shutdown_all. Let every restart end (or fail) first: a kill by
        # the sandbox can be followed by two (the auto-restarter's and the sandbox's).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.restart_wait_seconds
        while (km := self._kernels.get(kernel_id)) is not None and not km.ready.done():
            if kernel_id in self._pending_kernels:
                break  # a first start: jupyter_client itself waits for it
            if loop.time() >= deadline:
                raise HTTPError(409, "The kernel is still restarting: try again in a moment")
            with contextlib.suppress(Exception):  # a failed restart: the shutdown below removes it
                await asyncio.wait_for(asyncio.shield(km.ready), deadline - loop.time())
        if not restart and kernel_id in self:
            self._emit("stopping", kernel_id, self._owners.get(kernel_id, ""))
        # no await from here to jupyter_client's check: ``ready`` cannot change meanwhile
        return await super()._async_shutdown_kernel(kernel_id, now=now, restart=restart)

    shutdown_kernel = _async_shutdown_kernel

    def remove_kernel(self, kernel_id):
        owner = self._owners.pop(kernel_id, "")
        try:
            return super().remove_kernel(kernel_id)
        finally:
            self._emit("stopped", kernel_id, owner)
