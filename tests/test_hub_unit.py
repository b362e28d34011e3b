"""What eda_gateway takes from JupyterHub (eda_gateway/hub.py), in process: where the Hub
started the server, the groups and admins it reports, and how roles and limits use them.
The real Hub runs in tests/test_jupyterhub_service.py and test_jupyterhub_singleuser.py."""

import asyncio

from jupyter_server.auth.identity import IdentityProvider
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider, JupyterHubUser

from eda_gateway.authorization import ADMIN, Roles
from eda_gateway.hub import (
    MIB,
    HubMembership,
    HubPlace,
    is_hub_provider,
    limits_that_do_not_fit,
    recording_provider,
    spawner_limits,
)
from eda_gateway.identity import choose_mode
from eda_gateway.limits import LimitPolicy, Limits


def test_where_the_hub_started_this_server():
    assert HubPlace.from_environment({}) == HubPlace() and not HubPlace().under_hub
    spawned = HubPlace.from_environment({"JUPYTERHUB_USER": "alice", "JUPYTERHUB_API_TOKEN": "x"})
    assert spawned == HubPlace(owner="alice") and spawned.under_hub
    # a service is nobody's server, even if $JUPYTERHUB_USER leaked into its environment
    service = HubPlace.from_environment({"JUPYTERHUB_SERVICE_NAME": "eda", "JUPYTERHUB_USER": "root"})
    assert service == HubPlace(service="eda")


def test_membership_follows_what_the_hub_says_last():
    membership = HubMembership()
    membership.record({"kind": "user", "name": "alice", "groups": ["analysts"], "admin": True})
    assert membership.groups_of("alice") == {"analysts"} and membership.is_admin("alice")
    membership.record({"kind": "user", "name": "alice", "groups": [], "admin": False})
    assert membership.groups_of("alice") == frozenset() and not membership.is_admin("alice")
    assert membership.groups_of("bob") == frozenset() and not membership.is_admin("bob")


def test_membership_ignores_services_and_malformed_models():
    membership = HubMembership()
    membership.record({"kind": "service", "name": "eda", "admin": True, "groups": ["x"]})
    membership.record({"name": "", "admin": True})
    membership.record({"name": ["alice"], "admin": True})
    membership.record({"name": "bob", "groups": "analysts", "admin": "yes"})  # wrong types: nothing taken
    assert not membership.is_admin("eda") and not membership.is_admin("bob")
    assert membership.groups_of("bob") == frozenset()


def test_the_hubs_provider_reports_every_user_it_authenticates():
    membership = HubMembership()
    model = {"kind": "user", "name": "erin", "groups": ["eda-admins"], "admin": False, "scopes": []}

    class FakeHubProvider(JupyterHubIdentityProvider):
        async def get_user(self, handler):  # what the Hub answered for this request
            return JupyterHubUser(model)

    provider_class = recording_provider(FakeHubProvider, membership)
    assert is_hub_provider(provider_class) and provider_class.__name__ == "FakeHubProvider"
    user = asyncio.run(provider_class.get_user(object.__new__(provider_class), handler=None))
    assert user.username == "erin"
    assert membership.groups_of("erin") == {"eda-admins"}


def test_a_hub_services_token_names_nobody():
    """Services and users are named apart at the Hub: a service "alice" is not alice here."""
    membership = HubMembership()

    class FakeHubProvider(JupyterHubIdentityProvider):
        async def get_user(self, handler):
            return JupyterHubUser({"kind": "service", "name": "alice", "admin": True, "scopes": []})

    provider_class = recording_provider(FakeHubProvider, membership)
    assert asyncio.run(provider_class.get_user(provider_class(), handler=None)) is None
    assert not membership.is_admin("alice")


def test_roles_ask_groups_and_the_hub_at_every_check():
    groups = {"erin": ["eda-admins"]}
    hub_admins = set()
    roles = Roles({"root"}, owner="", admin_groups={"eda-admins"},
                  groups_of=lambda u: groups.get(u, []), other_admin=lambda u: u in hub_admins)
    assert roles.is_admin("root") and roles.is_admin("erin") and not roles.is_admin("ada")
    hub_admins.add("ada")
    groups["erin"] = []
    assert roles.is_admin("ada") and not roles.is_admin("erin")  # no restart needed
    assert ADMIN in roles.scopes_of("ada") and ADMIN not in roles.scopes_of("erin")
    assert not roles.is_admin("") and not roles.is_admin(None)


def test_a_hub_spawned_server_is_its_owners():
    mode = choose_mode("auto", JupyterHubIdentityProvider, "root", hub_owner="alice")
    assert not mode.single_user and mode.owner == "alice" and mode.personal
    assert "alice" in mode.describe()
    # a Hub service: users as the Hub names them, nobody's server
    service = choose_mode("auto", JupyterHubIdentityProvider, "root")
    assert not service.single_user and service.owner == "" and not service.personal
    # outside the Hub's provider $JUPYTERHUB_USER names nobody
    assert choose_mode("auto", IdentityProvider, "root", hub_owner="alice").owner == "root"
    assert choose_mode("multi-user", IdentityProvider, "root", hub_owner="alice").owner == ""
    assert choose_mode("single-user", JupyterHubIdentityProvider, "me", hub_owner="alice").single_user


def test_limits_of_hub_groups():
    configured = {"ops": ["alice"]}
    with_hub = {"alice": ["analysts", "ops"]}  # the configured group and the Hub's
    policy = LimitPolicy(Limits(), {"@analysts": {"max_executions_per_minute": 20}, "@ops": {"max_memory_mb": 1024}},
                         configured, lambda u: with_hub.get(u, []))
    limits = policy.for_user("alice")
    assert limits.max_executions_per_minute == 20 and limits.max_memory_mb == 1024
    assert policy.for_user("bob").max_executions_per_minute == 10
    assert policy.groups_of("alice") == ["ops"]  # the configured groups alone


def test_the_spawners_limits_of_the_whole_server():
    assert spawner_limits({}) == (None, None)
    assert spawner_limits({"MEM_LIMIT": "3221225472", "CPU_LIMIT": "2.0"}) == (3 * 1024 * MIB, 2.0)
    assert spawner_limits({"MEM_LIMIT": "3G", "CPU_LIMIT": "0"}) == (None, None)  # unreadable, unset


def test_kernels_that_need_more_than_the_hub_gives_are_named():
    assert limits_that_do_not_fit(3 * 1024 * MIB, 2.0, 4, 512, 50) == []
    assert limits_that_do_not_fit(None, None, 40, 512, 100) == []
    memory, cpu = limits_that_do_not_fit(2 * 1024 * MIB, 1.0, 4, 512, 50)
    assert "2048 MiB" in memory and "mem_limit" in memory
    assert "2 cores" in cpu and "cpu_limit is 1" in cpu
