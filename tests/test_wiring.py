"""Explicit wiring: the launch chain the provisioner gets from its kernel manager, the
EDAIsolation section (and its old EDASandbox names), services built with their collaborators."""

from __future__ import annotations

import logging

import pytest
from traitlets.config import Config, Configurable

from harness import eda_config

KERNEL_ID = "00000000-0000-4000-8000-000000000001"


class _Mapping(Configurable):
    """The MappingKernelManager's place: what EDAKernelManager offers the provisioner."""

    launch_chain = None

    def owner_of(self, kernel_id):
        return "alice"


class _KernelManager(Configurable):
    """The provisioner's documented parent: one kernel's KernelManager."""


def _provisioner(chain, app=None):
    from eda_gateway.sandbox.provisioner import EDAProvisioner

    mapping = _Mapping()
    mapping.launch_chain = chain
    if app is not None:
        mapping.eda_gateway = app  # the back-reference to the app the provisioner used to walk to
    return EDAProvisioner(kernel_id=KERNEL_ID, kernel_spec=None, parent=_KernelManager(parent=mapping))


class _Recorder:
    """A sandbox and an isolation that note what the chain asked of them, in order."""

    def __init__(self, calls: list, ready: bool = True):
        self.calls = calls
        self.ready = ready

    # the sandbox's side
    def prepare_launch(self, kernel_id, owner, kwargs):
        self.calls.append(("sandbox", kernel_id, owner))
        return {**kwargs, "env": {**kwargs.get("env", {}), "CONFINED": "1"}}

    def attached(self, kernel_id, pid):
        self.calls.append(("attached", kernel_id, pid))

    async def kill_tree(self, kernel_id):
        self.calls.append(("kill", kernel_id))

    async def released(self, kernel_id, restart):
        self.calls.append(("released", kernel_id, restart))

    # isolation's side
    def wrap(self, provisioner, owner, kwargs):
        self.calls.append(("isolation", owner, dict(kwargs["env"])))
        return {**kwargs, "cmd": ["wrapper", "--", *kwargs["cmd"]]}


@pytest.mark.parametrize("chain", [None, "not ready"], ids=["no chain", "sandbox not started"])
def test_the_provisioner_refuses_to_launch_without_a_ready_chain(jp_asyncio_loop, chain):
    from eda_gateway.sandbox.provisioner import SandboxMissing

    calls: list = []
    app = None
    if chain == "not ready":
        from eda_gateway.sandbox.launcher import LaunchChain

        chain = LaunchChain(_Recorder(calls, ready=False), _Recorder(calls), lambda kernel_id: "alice")
    else:  # a running sandbox reachable through an app is not the chain: still refused
        from types import SimpleNamespace

        app = SimpleNamespace(sandbox=_Recorder(calls))
    provisioner = _provisioner(chain, app)
    with pytest.raises(SandboxMissing):
        jp_asyncio_loop.run_until_complete(provisioner.pre_launch(cmd=["python"]))
    with pytest.raises(SandboxMissing):
        jp_asyncio_loop.run_until_complete(provisioner.post_launch())
    assert calls == []


def test_the_chain_runs_the_sandbox_then_isolation_for_the_owner():
    from eda_gateway.sandbox.launcher import LaunchChain

    calls: list = []
    owners = {KERNEL_ID: "alice"}
    chain = LaunchChain(_Recorder(calls), _Recorder(calls), owners.get)
    provisioner = _provisioner(chain)
    launch = chain.prepare(provisioner, {"cmd": ["python", "-m", "ipykernel"], "env": {}})
    assert calls == [("sandbox", KERNEL_ID, "alice"), ("isolation", "alice", {"CONFINED": "1"})]
    assert launch["cmd"] == ["wrapper", "--", "python", "-m", "ipykernel"]


def test_the_provisioner_hands_each_step_of_a_kernels_life_to_its_managers_chain(jp_asyncio_loop):
    from eda_gateway.sandbox.launcher import LaunchChain

    calls: list = []
    provisioner = _provisioner(LaunchChain(_Recorder(calls), _Recorder(calls), lambda kernel_id: "alice"))
    chain = provisioner._chain()
    chain.attached(KERNEL_ID, 42)
    jp_asyncio_loop.run_until_complete(chain.kill(KERNEL_ID))
    jp_asyncio_loop.run_until_complete(chain.released(KERNEL_ID, restart=False))
    assert calls == [("attached", KERNEL_ID, 42), ("kill", KERNEL_ID), ("released", KERNEL_ID, False)]


# --- EDAIsolation, and the old EDASandbox names ---------------------------------------


def _isolation_section(config: dict, caplog):
    from eda_gateway.isolation.settings import EDAIsolation

    caplog.set_level(logging.WARNING)
    return EDAIsolation(config=Config(config), log=logging.getLogger("test_wiring"))


def test_an_old_isolation_name_still_works_and_warns(caplog):
    section = _isolation_section({"EDASandbox": {"isolation": "none", "uid_range": (2000, 3000)}}, caplog)
    assert (section.isolation, tuple(section.uid_range)) == ("none", (2000, 3000))
    warnings = [r.getMessage() for r in caplog.records]
    assert any("EDASandbox.isolation is deprecated: use EDAIsolation.isolation" in w for w in warnings), warnings
    assert any("EDASandbox.uid_range is deprecated" in w for w in warnings), warnings
    assert len(warnings) == 2  # once per setting


def test_the_new_isolation_name_wins_over_the_old(caplog):
    section = _isolation_section({"EDASandbox": {"allow_network": True}, "EDAIsolation": {"allow_network": False}},
                                 caplog)
    assert section.allow_network is False
    assert any("EDASandbox.allow_network is deprecated and ignored" in r.getMessage() for r in caplog.records)


def test_isolation_settings_are_their_own_section_in_the_help():
    from eda_gateway.app import EDAGateway
    from eda_gateway.isolation.settings import EDAIsolation

    assert EDAIsolation in EDAGateway.classes
    help_text = EDAIsolation.class_get_help()
    assert all(f"--EDAIsolation.{name}" in help_text for name in ("isolation", "allow_network", "user_uids",
                                                                    "uid_range"))


def test_a_bad_old_isolation_name_stops_startup_naming_it(refused_start):
    assert "EDASandbox.isolation" in refused_start({"EDASandbox": {"isolation": "bogus"}})


def test_a_bad_isolation_stops_startup_naming_it(refused_start):
    assert "EDAIsolation.isolation" in refused_start({"EDAIsolation": {"isolation": "bogus"}})


# --- in process: the app wires what the services get -----------------------------------


def _gateway(serverapp):
    (gateway,) = serverapp.extension_manager.extension_apps["eda_gateway"]
    return gateway


def test_the_server_takes_the_old_isolation_name(jp_configurable_serverapp, tmp_path):
    serverapp = jp_configurable_serverapp(config=eda_config(tmp_path, {"EDASandbox": {"isolation": "none"}}))
    gateway = _gateway(serverapp)
    assert gateway.isolation_config.isolation == "none"
    assert gateway.isolation.choice == [] and gateway.isolation.active == []


def test_the_kernel_manager_holds_the_chain_of_this_servers_sandbox_and_isolation(jp_serverapp):
    gateway = _gateway(jp_serverapp)
    chain = jp_serverapp.kernel_manager.launch_chain
    assert chain.sandbox is gateway.sandbox and chain.isolation is gateway.isolation
    assert not hasattr(jp_serverapp.kernel_manager, "eda_gateway")  # no way back to the app
    assert gateway.sandbox.watchdog.kernel_manager is jp_serverapp.kernel_manager  # the watchdog's peers only
    assert gateway.sandbox.watchdog.ledger is gateway.ledger
    assert not hasattr(gateway.sandbox, "gateway")  # no back-reference to the app either


def test_system_stats_answers_from_its_three_collaborators():
    from types import SimpleNamespace

    from eda_gateway.limits import Limits
    from eda_gateway.system_stats import SystemStats
    from eda_gateway.telemetry import KernelSample, Snapshot

    def kernel(user):
        return KernelSample(f"k-{user}", user, None, 0, 0.0, "idle", Limits())

    telemetry = SimpleNamespace(snapshot=Snapshot(kernels=(kernel("alice"), kernel("bob")), sampled_at=0.0))
    stats = SystemStats(telemetry, SimpleNamespace(enforcement="cgroup-v2"),
                        SimpleNamespace(active=["landlock"], warning=None))
    mine = stats.report("alice", everyone=False)
    assert [k["user"] for k in mine["kernels"]] == ["alice"] and mine["active_kernels"] == 2
    assert (mine["enforcement"], mine["isolation"], mine["sampled_at"]) == ("cgroup-v2", ["landlock"],
                                                                           "1970-01-01T00:00:00Z")
    assert [k["user"] for k in stats.report("admin", everyone=True)["kernels"]] == ["alice", "bob"]
