"""Authorization without a server: roles and scopes, ownership, the authorizer's rules,
and who a manager acts for (eda_gateway/authorization.py, eda_gateway/users.py)."""

from __future__ import annotations

import contextvars
from types import SimpleNamespace

import pytest
from jupyter_server import CallContext
from jupyter_server.auth.identity import User

from eda_gateway.authorization import (
    ADMIN,
    EXECUTE,
    HISTORY,
    SERVER,
    STATUS,
    EDAAuthorizer,
    Ownership,
    Roles,
)
from eda_gateway.users import current_actor

KERNELS = {"k-alice": "alice", "k-server": ""}
SESSIONS = {"s-alice": "alice", "s-legacy": None}


@pytest.fixture
def ownership():
    return Ownership(Roles({"admin"}), KERNELS.get, SESSIONS.get)


@pytest.fixture
def authorizer(ownership):
    return EDAAuthorizer(ownership=ownership)


def user(name):
    return User(username=name)


def handler(**path_kwargs):
    return SimpleNamespace(path_kwargs=path_kwargs)


# --- roles and scopes -----------------------------------------------------------


def test_every_named_user_has_the_user_scopes_and_only_admins_eda_admin():
    roles = Roles({"admin"})
    assert roles.scopes_of("alice") == {HISTORY, EXECUTE, STATUS}
    assert roles.scopes_of("admin") == {ADMIN, HISTORY, EXECUTE, STATUS}
    assert roles.scopes_of(SERVER) == {ADMIN, HISTORY, EXECUTE, STATUS}


@pytest.mark.parametrize("nobody", [None, ""])
def test_nobody_has_any_scope(nobody):
    assert Roles({"admin", ""}).scopes_of(nobody) == frozenset()
    assert not Roles({""}).is_admin(nobody)


def test_the_single_user_owner_is_an_admin():
    roles = Roles((), owner="me")
    assert roles.is_admin("me") and roles.has_scope("me", ADMIN)
    assert not roles.is_admin("someone-else")


# --- ownership ------------------------------------------------------------------


def test_a_kernel_is_its_owners(ownership):
    assert ownership.may_use_kernel("alice", "k-alice")
    assert not ownership.may_use_kernel("bob", "k-alice")
    assert not ownership.may_use_kernel("bob", "k-server")  # the server's: not a user's
    assert not ownership.may_use_kernel("bob", "k-unknown")


def test_admins_and_the_server_act_on_every_kernel(ownership):
    for actor in ("admin", SERVER):
        assert ownership.may_use_kernel(actor, "k-alice")
        assert ownership.may_use_kernel(actor, "k-server")


@pytest.mark.parametrize("nobody", [None, ""])
def test_nobody_acts_on_anything(ownership, nobody):
    """No user never means allowed: not a kernel, not a session, no folder."""
    assert not ownership.sees_everything(nobody)
    assert not ownership.may_use_kernel(nobody, "k-alice")
    assert not ownership.may_use_kernel(nobody, "k-server")
    assert not ownership.may_use_session(nobody, "s-alice")
    assert not ownership.may_use_session(nobody, "s-unknown")
    with pytest.raises(PermissionError):
        ownership.folder_of(nobody)


def test_sessions_are_their_owners_and_unowned_ones_are_left_to_the_manager(ownership):
    assert ownership.may_use_session("alice", "s-alice")
    assert not ownership.may_use_session("bob", "s-alice")
    assert ownership.may_use_session("admin", "s-alice")
    assert ownership.may_use_session("bob", "s-unknown")  # the session manager answers 404
    assert ownership.may_use_session("bob", "s-legacy")


def test_folders(ownership):
    assert ownership.folder_of("alice") == "alice"
    assert ownership.folder_of("admin") is None  # the whole root_dir
    assert ownership.folder_of(SERVER) is None


def test_the_server_is_no_username():
    """A user called like the server's principal gets nothing from the name."""
    ownership = Ownership(Roles(()), {"k": "SERVER"}.get, SESSIONS.get)
    assert not ownership.sees_everything("SERVER")
    assert not ownership.may_use_kernel("SERVER", "k-alice")


# --- the authorizer -----------------------------------------------------------------


def test_without_ownership_everything_is_refused():
    authorizer = EDAAuthorizer()
    assert not authorizer.is_authorized(handler(), user("admin"), "read", "contents")
    assert not authorizer.is_authorized(handler(), user("admin"), "read", STATUS)
    assert not authorizer.has_scope("admin", STATUS)


def test_no_user_is_refused_everything(authorizer):
    for resource in ("contents", "kernels", STATUS):
        assert not authorizer.is_authorized(handler(), None, "read", resource)
        assert not authorizer.is_authorized(handler(), SimpleNamespace(username=""), "read", resource)


@pytest.mark.parametrize(
    "resource, action",
    [("terminals", "read"), ("terminals", "execute"), ("server", "write"), ("lsp", "execute"),
     ("events", "read"), ("config", "write"), (ADMIN, "read")],
)
def test_admin_only_resources(authorizer, resource, action):
    assert not authorizer.is_authorized(handler(), user("alice"), action, resource)
    assert authorizer.is_authorized(handler(), user("admin"), action, resource)


@pytest.mark.parametrize("resource, action", [("config", "read"), ("lsp", "read"), ("contents", "write"),
                                              (STATUS, "read"), (HISTORY, "read"), (EXECUTE, "write")])
def test_what_every_user_may(authorizer, resource, action):
    assert authorizer.is_authorized(handler(), user("alice"), action, resource)


def test_kernels_and_websockets_are_their_owners(authorizer):
    assert authorizer.is_authorized(handler(kernel_id="k-alice"), user("alice"), "execute", "kernels")
    assert not authorizer.is_authorized(handler(kernel_id="k-alice"), user("bob"), "execute", "kernels")
    assert authorizer.is_authorized(handler(kernel_id="k-alice"), user("admin"), "write", "kernels")
    # unknown: the kernel handler answers 404, as for a kernel that never existed
    assert authorizer.is_authorized(handler(kernel_id="k-unknown"), user("bob"), "read", "kernels")


def test_sessions_by_id(authorizer):
    assert authorizer.is_authorized(handler(session_id="s-alice"), user("alice"), "write", "sessions")
    assert not authorizer.is_authorized(handler(session_id="s-alice"), user("bob"), "write", "sessions")


def test_reading_another_users_data_takes_eda_admin(authorizer):
    assert authorizer.may_read_user("alice", "alice")
    assert not authorizer.may_read_user("alice", "bob")
    assert authorizer.may_read_user(user("admin"), "bob")
    assert not authorizer.may_read_user(None, "")


# --- who a manager acts for ------------------------------------------------------------


def test_outside_any_request_the_server_acts():
    assert current_actor() is SERVER


def in_request(current_user):
    """current_actor() as seen while a handler with ``current_user`` is being served."""

    def call():
        CallContext.set(CallContext.JUPYTER_HANDLER, SimpleNamespace(current_user=current_user))
        return current_actor()

    return contextvars.copy_context().run(call)


def test_in_a_request_the_user_acts_and_a_request_without_one_is_nobody():
    assert in_request(user("alice")) == "alice"
    assert in_request(None) is None
    assert in_request(SimpleNamespace(username="")) is None


# --- the managers ask the ownership service ----------------------------------------------


@pytest.fixture
def kernel_manager(ownership):
    from eda_gateway.kernels import EDAKernelManager

    km = EDAKernelManager()
    km._owners.update(KERNELS)
    km.ownership = ownership
    return km


def test_the_kernel_manager_lets_nobody_act_on_a_kernel(kernel_manager):
    assert kernel_manager.may_act_on("k-alice", "alice")
    assert kernel_manager.may_act_on("k-alice", SERVER)
    assert not kernel_manager.may_act_on("k-alice", None)  # once: "no user" meant every kernel
    assert not kernel_manager.may_act_on("k-alice", "bob")


def test_before_wiring_the_kernel_manager_knows_owners_but_no_admins(kernel_manager):
    kernel_manager.ownership = None
    assert kernel_manager.may_act_on("k-alice", "alice")
    assert not kernel_manager.may_act_on("k-alice", "admin")


def test_folders_of_the_contents_api(tmp_path, ownership):
    from tornado.web import HTTPError

    from eda_gateway.contents import folder_for

    root = str(tmp_path)
    assert folder_for(root, SERVER, None) == root  # start-up checks, before wiring
    assert folder_for(root, "admin", ownership) == root
    alice = folder_for(root, "alice", ownership)
    assert alice == str(tmp_path / "alice") and (tmp_path / "alice").stat().st_mode & 0o777 == 0o700
    for actor, wired in ((None, ownership), ("", ownership), ("alice", None)):
        with pytest.raises(HTTPError) as refused:
            folder_for(root, actor, wired)
        assert refused.value.status_code == 403


def test_a_kernel_listed_before_jupyter_server_marks_its_start_has_a_model(kernel_manager):
    """jupyter_client lists a kernel once its process started; jupyter_server sets its
    ``last_activity`` an event-loop turn later. A GET /api/kernels in between was a 500
    (seen when a warm kernel started beside a listing)."""
    km = kernel_manager
    kernel, _, kernel_id = km.pre_start_kernel(None, {"kernel_id": "00000000-0000-4000-8000-00000000000f"})
    km._kernels[kernel_id] = kernel  # where _add_kernel_when_ready puts it, before the start is marked
    km._owners[kernel_id] = "alice"
    [model] = km.list_kernels()  # outside a request: the server itself asks
    assert model["id"] == kernel_id and model["execution_state"] == "starting" and model["last_activity"]
