"""The REST execution API's engine: one managed kernel per user and dataset, and a runner.

``DatasetKernels`` starts a user's kernel for a dataset on first use (owned by
the user: it is in their kernel list, counts against ``max_kernels_per_user``
and is confined like every kernel), restarts it if it died, and preloads the
dataset after every (re)start: ``source_path``, env ``EDA_SOURCE_PATH`` and,
for CSV/Parquet/JSON files when pandas is installed, ``df``.

``KernelRunner`` runs one execute_request over a jupyter_client async kernel
client and collects iopub into nbformat outputs until the execute_reply AND
the idle status (ipykernel 7 sends the reply before the execute_result). It
listens for sandbox verdicts while the run is in flight.

``ExecutionService`` puts them together with admission: admit, then run
serialized per dataset kernel, and always end the lease in the execution ledger
(``finally``, with why it ended), even if the HTTP client has gone away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from queue import Empty

from tornado.web import HTTPError

from .datasets import Dataset, DatasetCatalogue
from . import ledger as lease_ends
from .outputs import OUTPUT_MSG_TYPES, OutputCollector
from .verdicts import BACKGROUND_EXECUTION_TIMEOUT, ENDINGS, EXECUTION_TIMEOUT, KERNEL_DIED, KERNEL_RESTARTED, Verdict

# Runs in the kernel after each (re)start. Names starting with _eda are removed.
PRELOAD_CODE = """
import os as _eda_os
# a warm kernel was started before its dataset was known: its environment is set here
_eda_os.environ.update(EDA_SOURCE_PATH={path!r}, EDA_SOURCE_ID={dataset_id!r})
source_path = _eda_os.environ["EDA_SOURCE_PATH"]
if {reader!r}:
    try:
        import pandas as _eda_pd
    except ImportError:
        _eda_pd = None
    if _eda_pd is not None:
        try:
            df = getattr(_eda_pd, {reader!r})(source_path)
        except Exception as _eda_e:
            import sys as _eda_sys
            print(f"df could not be loaded from {{source_path}}: {{type(_eda_e).__name__}}: {{_eda_e}}",
                  file=_eda_sys.stderr)
            del _eda_e, _eda_sys
    del _eda_pd
del _eda_os
"""


class KernelGone(Exception):
    """The dataset kernel was shut down while a request waited for it."""


class KernelUnavailable(Exception):
    """The dataset kernel could not be (re)started."""


class RunRefused(Exception):
    """Admission said no: carries the Decision for the 429 answer."""

    def __init__(self, decision):
        super().__init__(getattr(decision, "reason", "refused"))
        self.decision = decision


@dataclass
class RunResult:
    status: str
    execution_count: int | None
    outputs: list[dict]
    error: dict | None
    duration_seconds: float
    kernel_id: str
    truncated: bool = False
    ended: str | None = None  # "killed" | "died" | "restarted" | "deadline": no reply came

    def to_json(self) -> dict:
        return {
            "status": self.status,
            "execution_count": self.execution_count,
            "outputs": self.outputs,
            "error": self.error,
            "duration_seconds": round(self.duration_seconds, 6),
            "kernel_id": self.kernel_id,
            "truncated": self.truncated,
        }


def _kernel_pid(kernel) -> int | None:
    provisioner = getattr(kernel, "provisioner", None)
    return getattr(provisioner, "pid", None) if provisioner is not None else None


class KernelRunner:
    """Runs one execute_request and turns what the kernel says into a RunResult."""

    # How often a waiting run checks that its kernel is still the same live process.
    poll_seconds = 0.5
    # After the execute_reply, how long to wait for the idle status (and trailing output).
    idle_grace_seconds = 10.0
    # After seeing the kernel die, how long to wait for the sandbox's verdict naming why.
    verdict_grace_seconds = 3.0

    def __init__(self, kernel_manager, verdicts, sandbox, max_output_bytes: int, log):
        self.kernel_manager = kernel_manager
        self.verdicts = verdicts
        self.sandbox = sandbox
        self.max_output_bytes = max_output_bytes
        self.log = log

    @staticmethod
    def new_request(client, code: str, msg_id: str | None = None, store_history: bool = True) -> dict:
        content = {
            "code": code,
            "silent": False,
            "store_history": store_history,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = client.session.msg("execute_request", content)
        if msg_id:
            msg["header"]["msg_id"] = msg["msg_id"] = msg_id
        return msg

    async def run(self, kernel_id: str, client, request: dict, deadline_seconds: float) -> RunResult:
        msg_id = request["header"]["msg_id"]
        started = time.monotonic()
        kernel = self.kernel_manager.get_kernel(kernel_id)
        pid = _kernel_pid(kernel)
        collector = OutputCollector(self.max_output_bytes)
        verdict: list[Verdict] = []
        killed = asyncio.Event()

        def on_verdict(v: Verdict) -> None:
            if v.msg_id in (None, msg_id):
                verdict.append(v)
                if v.killed:
                    killed.set()

        unsubscribe = self.verdicts.subscribe(kernel_id, on_verdict)
        reply_task = asyncio.create_task(self._wait_reply(client, msg_id))
        iopub_task = asyncio.create_task(self._collect_iopub(client, msg_id, collector))
        killed_task = asyncio.create_task(killed.wait())
        try:
            client.shell_channel.send(request)
            ended: str | None = None  # why the run ended without reply+idle
            reply_at = None
            while True:
                await asyncio.wait(
                    {reply_task, iopub_task, killed_task},
                    timeout=self.poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if killed.is_set():
                    ended = "killed"
                    break
                if reply_task.done() and iopub_task.done():
                    break
                if reply_task.done():
                    reply_at = reply_at or time.monotonic()
                    if time.monotonic() - reply_at > self.idle_grace_seconds:
                        break  # the reply is what counts; the idle got lost
                    continue
                ended = await self._check_kernel(kernel_id, pid)
                if ended:
                    # The sandbox names a kill a moment after the process is gone.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(killed_task), self.verdict_grace_seconds)
                    break
                if time.monotonic() - started > deadline_seconds:
                    ended = "deadline"
                    break
            return self._result(
                kernel_id, msg_id, started, collector, reply_task, verdict, ended, deadline_seconds
            )
        finally:
            unsubscribe()
            for task in (reply_task, iopub_task, killed_task):
                task.cancel()
            await asyncio.gather(reply_task, iopub_task, killed_task, return_exceptions=True)

    async def _check_kernel(self, kernel_id: str, pid: int | None) -> str | None:
        try:
            kernel = self.kernel_manager.get_kernel(kernel_id)
        except KeyError:
            return "died"
        if not await kernel.is_alive():
            return "died"
        if _kernel_pid(kernel) != pid:
            return "restarted"
        return None

    @staticmethod
    async def _wait_reply(client, msg_id: str) -> dict:
        while True:
            try:
                msg = await client.get_shell_msg(timeout=1.0)
            except Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "execute_reply":
                return msg["content"]

    @staticmethod
    async def _collect_iopub(client, msg_id: str, collector: OutputCollector) -> None:
        while True:
            try:
                msg = await client.get_iopub_msg(timeout=1.0)
            except Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            msg_type = msg["msg_type"]
            if msg_type in OUTPUT_MSG_TYPES:
                collector.add(msg_type, msg["content"])
            elif msg_type == "status" and msg["content"].get("execution_state") == "idle":
                return

    def _result(self, kernel_id, msg_id, started, collector, reply_task, verdicts, ended, deadline) -> RunResult:
        duration = time.monotonic() - started
        # A sandbox limit's kill names the run, not the ending ("died", "restarting") that
        # follows it; a verdict published just before we subscribed still counts.
        limit = [v for v in verdicts if v.killed and v.ename not in ENDINGS]
        verdict = (limit or verdicts)[-1] if verdicts else self.verdicts.recent(kernel_id, msg_id)
        if not verdicts and verdict is not None and (
            verdict.ename in ENDINGS or verdict.ename == BACKGROUND_EXECUTION_TIMEOUT
        ):
            verdict = None  # it ended what was pending (or running outside executions) then, not this run
        reply = reply_task.result() if reply_task.done() and not reply_task.cancelled() else None
        execution_count = reply.get("execution_count") if reply else None
        if verdict is not None and verdict.ename in ENDINGS and reply is not None:
            verdict = None  # the kernel answered before it went: its answer stands
        if verdict is None and reply and reply.get("status") == "error":
            verdict = self.sandbox.allocation_refused(kernel_id, msg_id, reply)

        error = None
        if verdict is not None and (ended or (reply and reply.get("status") != "ok")):
            # A sandbox limit ended this execution: name it, in the outputs and the error.
            error = {"ename": verdict.ename, "evalue": verdict.evalue, "traceback": []}
            collector.outputs[:] = [o for o in collector.outputs if o["output_type"] != "error"]
            collector.outputs.append({"output_type": "error", **error})
        elif ended:
            ename, evalue = {
                "died": (KERNEL_DIED, "the kernel died during the execution; it is restarted on the next request"),
                "restarted": (KERNEL_RESTARTED, "the kernel was restarted during the execution"),
                "deadline": (EXECUTION_TIMEOUT, f"no answer from the kernel within {deadline:.0f} s"),
                "killed": (KERNEL_DIED, "the kernel was stopped"),
            }[ended]
            error = {"ename": ename, "evalue": evalue, "traceback": []}
            collector.outputs.append({"output_type": "error", **error})
        elif reply and reply.get("status") != "ok":
            shown = [o for o in collector.outputs if o["output_type"] == "error"]
            if shown:
                error = {k: shown[-1][k] for k in ("ename", "evalue", "traceback")}
            else:
                # e.g. an aborted request: the reply is all there is
                error = {
                    "ename": str(reply.get("ename", reply.get("status", "error"))),
                    "evalue": str(reply.get("evalue", ""))[: self.max_output_bytes],
                    "traceback": [],
                }
        return RunResult(
            status="error" if error else "ok",
            execution_count=execution_count,
            outputs=collector.result(),
            error=error,
            duration_seconds=duration,
            kernel_id=kernel_id,
            truncated=collector.truncated,
            ended=ended,
        )


@dataclass
class ManagedKernel:
    """A user's kernel for one dataset."""

    username: str
    dataset: Dataset | None  # None: a warm kernel, no dataset yet
    kernel_id: str
    client: object = None
    pid: int | None = None
    notice: str = ""  # told once, with the next result (e.g. df could not be loaded)
    preloaded: bool = False  # the dataset is loaded in this process (a warm kernel's is not yet)
    expect_restart: bool = False  # the last run saw the process killed: wait for its successor
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    drain: asyncio.Task | None = None  # reads (and drops) iopub between runs


class DatasetKernels:
    """Starts, revives and preloads the managed kernel of each (user, dataset)."""

    ready_timeout = 60.0
    # How long a dead kernel is left to the sandbox / auto-restarter before we restart it.
    revive_seconds = 8.0

    def __init__(self, kernel_manager, runner: KernelRunner, limits_for, log, server_work):
        self.kernel_manager = kernel_manager
        self.server_work = server_work  # kernel_id -> context: its CPU is the server's, not background
        self.runner = runner
        self.limits_for = limits_for
        self.log = log
        self._kernels: dict[tuple[str, str], ManagedKernel] = {}
        self._start_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.warm_start = True  # EDAGateway.warm_start
        self._warm: dict[str, ManagedKernel] = {}  # user -> a warm kernel, no dataset yet
        self._warming: dict[str, asyncio.Future] = {}
        kernel_manager.listeners.append(self._on_kernel_event)

    def kernel_of(self, username: str, dataset_id: str) -> ManagedKernel | None:
        return self._kernels.get((username, dataset_id))

    def manages(self, kernel_id: str) -> bool:
        """Whether ``kernel_id`` is a dataset kernel of this service (run through ``acquire``),
        or a warm one waiting for its dataset."""
        return kernel_id in self.datasets_by_kernel()

    def datasets_by_kernel(self) -> dict[str, str | None]:
        """kernel_id -> the dataset it runs on; None for a warm kernel waiting for its dataset."""
        found: dict[str, str | None] = {m.kernel_id: None for m in self._warm.values()}
        found.update((m.kernel_id, m.dataset.id) for m in self._kernels.values())
        return found

    async def acquire(self, username: str, dataset: Dataset) -> ManagedKernel:
        """The user's kernel for ``dataset``, started if there is none."""
        key = (username, dataset.id)
        async with self._start_locks.setdefault(key, asyncio.Lock()):
            managed = self._kernels.get(key)
            if managed is not None and managed.kernel_id in self.kernel_manager:
                return managed
            warming = self._warming.get(username)
            if warming is not None:  # under way: sooner ready than a cold start begun now
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(warming), self.ready_timeout)
            managed = self._take_warm(username, dataset)
            if managed is not None:
                self._kernels[key] = managed
                self.log.info("eda_gateway: warm kernel %s of %s takes dataset %s", managed.kernel_id, username,
                              dataset.id)
                return managed
            try:
                kernel_id = await self.kernel_manager.start_kernel(
                    eda_owner=username,
                    env={"EDA_SOURCE_PATH": dataset.path, "EDA_SOURCE_ID": dataset.id},
                )
            except HTTPError:
                raise  # e.g. 403 at max_kernels_per_user
            except Exception as e:
                raise KernelUnavailable(f"the dataset kernel could not be started: {e}") from e
            managed = ManagedKernel(username, dataset, kernel_id)
            self._kernels[key] = managed
            self.log.info("eda_gateway: started kernel %s for %s on dataset %s", kernel_id, username, dataset.id)
            return managed

    async def prepare(self, managed: ManagedKernel) -> None:
        """Make the kernel live and preloaded; call with ``managed.lock`` held."""
        if self._kernels.get((managed.username, managed.dataset.id)) is not managed:
            raise KernelGone(managed.kernel_id)
        kernel = await self._live_kernel(managed)
        pid = _kernel_pid(kernel)
        if managed.client is not None and pid == managed.pid:
            if not managed.preloaded:  # a warm kernel, taken for this dataset
                await self._preload(managed)
            return
        # New process (first start or any restart): a fresh client, then the preload.
        self._close_client(managed)
        client = kernel.client()
        client.start_channels()
        managed.client = client
        try:
            await client.wait_for_ready(timeout=self.ready_timeout)
        except RuntimeError as e:  # died or silent while starting
            managed.expect_restart = True
            raise KernelUnavailable(f"the dataset kernel did not start: {e}") from e
        managed.pid = pid
        await self._preload(managed)

    # --- warm kernels: ready before their dataset is known -------------------------------

    def warm_up(self, username: str) -> None:
        """Have a warm kernel ready for ``username``'s next new dataset (in the background):
        started and confined like any, imports done, counted in their kernels and memory.
        Only while the user has room below max_kernels_per_user: a warm kernel never takes
        the place of one they start themselves (and is idle with no client: reclaimed first)."""
        if not self.warm_start or username in self._warm or username in self._warming:
            return
        if len(self.kernel_manager.kernels_of(username)) + 1 >= self.limits_for(username).max_kernels_per_user:
            return
        self._warming[username] = asyncio.ensure_future(self._start_warm(username))

    async def _start_warm(self, username: str) -> None:
        kernel_id = None
        try:
            kernel_id = await self.kernel_manager.start_kernel(eda_owner=username)
            kernel = self.kernel_manager.get_kernel(kernel_id)
            client = kernel.client()
            client.start_channels()
            await client.wait_for_ready(timeout=self.ready_timeout)
            request = self.runner.new_request(client, WARM_UP_CODE, store_history=False)
            with self.server_work(kernel_id):
                await self.runner.run(kernel_id, client, request, self.limits_for(username).max_execution_time + 30)
            warm = ManagedKernel(username, None, kernel_id, client=client, pid=_kernel_pid(kernel))
            self.let_go(warm)  # drain its iopub while it waits
            self._warm[username] = warm
        except Exception as e:  # quota, disk, a failed start: the next run starts cold, as before
            self.log.info("eda_gateway: no warm kernel for %s: %s", username, e)
            if kernel_id is not None and kernel_id in self.kernel_manager:
                with contextlib.suppress(Exception):
                    await self.kernel_manager.shutdown_kernel(kernel_id, now=True)
        finally:
            self._warming.pop(username, None)

    def _take_warm(self, username: str, dataset: Dataset) -> ManagedKernel | None:
        warm = self._warm.pop(username, None)
        if warm is None or warm.kernel_id not in self.kernel_manager:
            return None
        warm.dataset = dataset
        warm.preloaded = False
        return warm

    async def _live_kernel(self, managed: ManagedKernel):
        """The kernel, once it runs a process we may use.

        A kernel that died is normally revived by someone else: the sandbox
        (after a kill verdict) or jupyter_server's auto-restarter. Restarting it
        at the same time breaks both restarts, so wait for them first, and
        restart it ourselves only if nobody did within ``revive_seconds``.
        """
        deadline = time.monotonic() + self.revive_seconds
        restarted = False
        while True:
            try:
                kernel = self.kernel_manager.get_kernel(managed.kernel_id)
            except KeyError:
                raise KernelGone(managed.kernel_id) from None
            pid = _kernel_pid(kernel)
            replaced = not managed.expect_restart or (pid is not None and pid != managed.pid)
            if replaced and not kernel.shutting_down and await kernel.is_alive():
                managed.expect_restart = False
                return kernel
            if time.monotonic() > deadline and not restarted and not kernel.shutting_down:
                self.log.info("eda_gateway: dataset kernel %s is down; restarting it", managed.kernel_id)
                restarted = True
                managed.expect_restart = False
                try:
                    await self.kernel_manager.restart_kernel(managed.kernel_id, now=True)
                except Exception as e:
                    raise KernelUnavailable(f"the dataset kernel could not be restarted: {e}") from e
                continue
            if time.monotonic() > deadline + self.ready_timeout:
                raise KernelUnavailable("the dataset kernel did not come back")
            await asyncio.sleep(0.1)

    async def _preload(self, managed: ManagedKernel) -> None:
        code = PRELOAD_CODE.format(reader=managed.dataset.dataframe_reader or "", path=managed.dataset.path,
                                   dataset_id=managed.dataset.id)
        # store_history=False: the user's first cell is still [1]
        request = self.runner.new_request(managed.client, code, store_history=False)
        limits = self.limits_for(managed.username)
        with self.server_work(managed.kernel_id):  # bounded by the run's own deadline
            result = await self.runner.run(managed.kernel_id, managed.client, request, limits.max_execution_time + 30)
        managed.preloaded = True  # tried: a failure is told once, in the notice
        if result.status != "ok":
            managed.notice = f"eda_gateway: preloading the dataset failed: {result.error['ename']}: {result.error['evalue']}"
            return
        text = "".join(o.get("text", "") for o in result.outputs if o["output_type"] == "stream").strip()
        managed.notice = f"eda_gateway: {text}" if text else ""

    def _on_kernel_event(self, event: str, kernel_id: str, owner: str) -> None:
        if event != "stopped":
            return
        for username, warm in list(self._warm.items()):
            if warm.kernel_id == kernel_id:
                self._close_client(warm)
                del self._warm[username]
        for key, managed in list(self._kernels.items()):
            if managed.kernel_id == kernel_id:
                self._close_client(managed)
                del self._kernels[key]

    async def hold(self, managed: ManagedKernel) -> None:
        """Stop draining: a run (``managed.lock`` held) reads the iopub channel now."""
        if managed.drain is not None:
            managed.drain.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await managed.drain
            managed.drain = None

    def let_go(self, managed: ManagedKernel) -> None:
        """Between runs, drop what the kernel still publishes (a background thread may
        print for hours): unread, it would pile up in the server's memory, up to ZeroMQ's
        1000 messages of any size."""
        if managed.client is not None and managed.drain is None:
            managed.drain = asyncio.create_task(self._drain(managed.client))

    @staticmethod
    async def _drain(client) -> None:
        while True:
            try:
                await client.get_iopub_msg(timeout=1.0)
            except Empty:
                continue

    @staticmethod
    def _close_client(managed: ManagedKernel) -> None:
        if managed.drain is not None:
            managed.drain.cancel()
            managed.drain = None
        if managed.client is not None:
            with contextlib.suppress(Exception):
                managed.client.stop_channels()
            managed.client = None
            managed.pid = None

    def close(self) -> None:
        for managed in (*self._kernels.values(), *self._warm.values()):
            self._close_client(managed)
        for task in self._warming.values():
            task.cancel()


# What a warm kernel does while it waits for a dataset: the imports dataset code starts with.
WARM_UP_CODE = """
try:
    import pandas as _eda_pd, numpy as _eda_np
    del _eda_pd, _eda_np
except ImportError:
    pass
"""

# How a run that got no reply ended, as the ledger names it.
_LEDGER_REASONS = {None: lease_ends.REPLIED, "killed": lease_ends.KILLED, "died": lease_ends.KERNEL_DIED,
                   "restarted": lease_ends.KERNEL_RESTARTED, "deadline": lease_ends.ABANDONED}


class ExecutionService:
    """Admit, then run on the caller's dataset kernel, one execution at a time per kernel.

    Collaborators: ``admission`` (admit), ``ledger`` (finish), the kernel manager, the
    verdict bus, the sandbox (``allocation_refused``), ``limits_for`` and the sandbox's
    ``interrupt_grace``.
    """

    def __init__(self, admission, ledger, kernel_manager, verdicts, sandbox, limits_for, interrupt_grace: float,
                 catalogue: DatasetCatalogue, max_output_bytes: int, log):
        self.admission = admission
        self.ledger = ledger
        self.limits_for = limits_for
        self.interrupt_grace = interrupt_grace
        self.catalogue = catalogue
        self.kernel_manager = kernel_manager
        self.runner = KernelRunner(kernel_manager, verdicts, sandbox, max_output_bytes, log)
        self.kernels = DatasetKernels(kernel_manager, self.runner, limits_for, log, server_work=sandbox.server_work)

    async def execute(self, username: str, source_id: str, code: str) -> RunResult:
        """Raises DatasetError (4xx), RunRefused (429), KernelGone, KernelUnavailable,
        or the kernel manager's HTTPError (e.g. 403 at max_kernels_per_user)."""
        dataset = self.catalogue.resolve(source_id, username)
        for attempt in (1, 2):
            try:
                return await self._execute_once(username, dataset, code)
            except KernelGone:
                # shut down while this request waited: once more, on a new kernel
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _execute_once(self, username: str, dataset: Dataset, code: str) -> RunResult:
        managed = await self.kernels.acquire(username, dataset)
        kernel_id = managed.kernel_id
        # The id exists before admission, so that the lease names this execution.
        msg_id = uuid.uuid4().hex
        decision = self.admission.admit(username, kernel_id, msg_id, "api")
        if not decision.allowed:
            raise RunRefused(decision)
        reason = lease_ends.ABANDONED  # unless a run says otherwise
        try:
            async with managed.lock:
                await self.kernels.hold(managed)
                try:
                    result = await self._run_held(managed, username, code, msg_id)
                    reason = _LEDGER_REASONS.get(result.ended, lease_ends.ABANDONED)
                    return result
                finally:
                    self.kernels.let_go(managed)
        finally:
            self.ledger.finish(kernel_id, msg_id, reason)
            # after the run, not beside it: a warm kernel starting takes CPU this run needs
            self.kernels.warm_up(username)

    async def _run_held(self, managed: ManagedKernel, username: str, code: str, msg_id: str) -> RunResult:
        """One run on the dataset kernel; ``managed.lock`` held."""
        await self.kernels.prepare(managed)
        request = self.runner.new_request(managed.client, code, msg_id=msg_id)
        limits = self.limits_for(username)
        # A backstop only: the sandbox ends long runs with a verdict well before.
        deadline = limits.max_execution_time + self.interrupt_grace + 30
        result = await self.runner.run(managed.kernel_id, managed.client, request, deadline)
        if result.ended in ("killed", "died"):
            managed.expect_restart = True
        if managed.notice:
            result.outputs.insert(0, {"output_type": "stream", "name": "stderr", "text": managed.notice + "\n"})
            managed.notice = ""
        return result

    def warm_up(self, username: str) -> None:
        """The user is about to run on a dataset (they listed them): have a warm kernel ready."""
        self.kernels.warm_up(username)

    async def run_in_kernel(self, username: str, kernel_id: str, code: str) -> RunResult:
        """Run ``code`` in a kernel the caller already has (a notebook's): its variables are
        the notebook's, its outputs reach the notebook too, under the same budget. The caller
        must be allowed to use the kernel (Ownership). Raises KernelGone (no such kernel, or a
        dataset kernel: those run through ``execute``), RunRefused."""
        if kernel_id not in self.kernel_manager or self.kernels.manages(kernel_id):
            raise KernelGone(kernel_id)
        kernel = self.kernel_manager.get_kernel(kernel_id)
        msg_id = uuid.uuid4().hex
        decision = self.admission.admit(username, kernel_id, msg_id, "api")
        if not decision.allowed:
            raise RunRefused(decision)
        reason = lease_ends.ABANDONED
        client = kernel.client()
        try:
            client.start_channels()
            request = self.runner.new_request(client, code, msg_id=msg_id)
            deadline = self.limits_for(username).max_execution_time + self.interrupt_grace + 30
            result = await self.runner.run(kernel_id, client, request, deadline)
            reason = _LEDGER_REASONS.get(result.ended, lease_ends.ABANDONED)
            return result
        finally:
            client.stop_channels()
            self.ledger.finish(kernel_id, msg_id, reason)

    def close(self) -> None:
        self.kernels.close()

