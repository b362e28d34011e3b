"""Who may do what, decided here and nowhere else.

- **Scopes** eda_gateway's own handlers declare (``auth_resource`` + jupyter_server's
  ``@authorized``): ``eda:admin`` (every user's data), ``eda:history`` (one's own
  history and events), ``eda:execute`` (the REST execution API and datasets),
  ``eda:status`` (one's own budget, system stats, the OpenAPI document). Every named
  user has the last three; admins have all four (docs/admin.md, "Scopes").
- **Roles**: admins are ``EDAGateway.admin_users``, the members of
  ``EDAGateway.admin_groups``, the Hub's admins under JupyterHub (eda_gateway/hub.py), and
  the owner of a personal server (single-user mode, or the Hub's server of its owner),
  who may do everything a plain ``jupyter lab`` allows.
- **Ownership**: may actor U act on kernel K, session S, whose folder are U's paths in.
  Managers, handlers, the authorizer and isolation ask it.
- **Who acts**: a username; ``SERVER``, the server itself (culling, reclaiming,
  shutting down, start-up checks: calls made outside any request); or ``None``, a
  request nobody authenticated. ``None`` is refused everything, everywhere.
- ``EDAAuthorizer``: jupyter_server's resources (kernels, sessions, terminals, ...)
  and the scopes above, for any IdentityProvider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Union

from jupyter_server.auth.authorizer import Authorizer
from traitlets import Instance

ADMIN = "eda:admin"
HISTORY = "eda:history"
EXECUTE = "eda:execute"
STATUS = "eda:status"
USER_SCOPES = frozenset({HISTORY, EXECUTE, STATUS})  # what every named user has
SCOPES = USER_SCOPES | {ADMIN}

# jupyter_server resources only admins may use: resource -> refused actions (None: all).
ADMIN_ONLY: dict[str, frozenset[str] | None] = {
    "terminals": None,  # a shell runs code outside every limit
    "server": None,  # "write" is shutdown
    # jupyter_lsp's language servers run outside every limit, and one server per
    # language is shared by all clients (one user's documents reach another)
    "lsp": frozenset({"execute"}),
    "events": None,  # the event bus carries every user's kernel and file events
    "config": frozenset({"write"}),  # frontend config is shared by everyone
}


class ServerPrincipal:
    """The server acting on its own, outside any request: it may act on every kernel,
    session and file (it starts, culls, reclaims and stops them). Never a username."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SERVER"


SERVER = ServerPrincipal()

# A username, the server itself, or None: a request without an authenticated user.
Actor = Union[str, ServerPrincipal, None]


def name_of(user: Any) -> str | None:
    """The username of a jupyter_server User (or a plain name); None when nobody is named."""
    if isinstance(user, str):
        return user or None
    return getattr(user, "username", None) or None


class Roles:
    """Who the admins are, and which scopes each actor has.

    ``groups_of`` answers a user's groups (configured and the Hub's) and ``other_admin``
    whether someone else (the Hub) names them an admin; both are asked at every check,
    so a change of membership holds without a restart.
    """

    def __init__(
        self,
        admin_users: Iterable[str],
        owner: str = "",
        admin_groups: Iterable[str] = (),
        groups_of: Callable[[str], Iterable[str]] | None = None,
        other_admin: Callable[[str], bool] | None = None,
    ) -> None:
        self._admins = frozenset(admin_users) | ({owner} if owner else frozenset())
        self._admin_groups = frozenset(admin_groups)
        self._groups_of = groups_of
        self._other_admin = other_admin

    def is_admin(self, username: str | None) -> bool:
        if not username or not isinstance(username, str):
            return False
        if username in self._admins or (self._other_admin is not None and self._other_admin(username)):
            return True
        return bool(self._admin_groups) and self._groups_of is not None and not self._admin_groups.isdisjoint(
            self._groups_of(username))

    def scopes_of(self, actor: Actor) -> frozenset[str]:
        if actor is SERVER or (isinstance(actor, str) and self.is_admin(actor)):
            return SCOPES
        return USER_SCOPES if isinstance(actor, str) and actor else frozenset()

    def has_scope(self, actor: Actor, scope: str) -> bool:
        return scope in self.scopes_of(actor)


class Ownership:
    """May an actor act on a kernel, a session, or which folder are its paths in.

    ``kernel_owner`` / ``session_owner`` answer None for an id they do not know and
    ``""`` for one the server owns (started outside any request in multi-user mode).
    """

    def __init__(
        self,
        roles: Roles,
        kernel_owner: Callable[[str], str | None],
        session_owner: Callable[[str], str | None],
    ) -> None:
        self.roles = roles
        self._kernel_owner = kernel_owner
        self._session_owner = session_owner

    def sees_everything(self, actor: Actor) -> bool:
        """The server and admins act on every user's kernels, sessions and files."""
        return actor is SERVER or (isinstance(actor, str) and self.roles.is_admin(actor))

    def owner_of_kernel(self, kernel_id: str) -> str | None:
        return self._kernel_owner(kernel_id)

    def owner_of_session(self, session_id: str) -> str | None:
        return self._session_owner(session_id)

    def kernel_exists(self, kernel_id: str) -> bool:
        return self._kernel_owner(kernel_id) is not None

    def may_use_kernel(self, actor: Actor, kernel_id: str) -> bool:
        """Only its owner (and the server, and admins); an unknown kernel is nobody's."""
        if self.sees_everything(actor):
            return True
        owner = self._kernel_owner(kernel_id)
        return isinstance(actor, str) and bool(actor) and owner == actor

    def may_use_session(self, actor: Actor, session_id: str) -> bool:
        """Its owner's; a session nobody owns (unknown, or stored without an owner) passes
        for a named user, so the session manager answers for it (a 404 for an unknown id)."""
        if self.sees_everything(actor):
            return True
        if not isinstance(actor, str) or not actor:
            return False
        owner = self._session_owner(session_id)
        return owner is None or owner == actor

    def folder_of(self, actor: Actor) -> str | None:
        """Whose folder the actor's API paths are rooted in; None: the whole root_dir
        (the server and admins). A request without a user has no folder: PermissionError."""
        if self.sees_everything(actor):
            return None
        if not isinstance(actor, str) or not actor:
            raise PermissionError("no authenticated user: no folder")
        return actor


class EDAAuthorizer(Authorizer):
    """jupyter_server's resource/action checks and eda_gateway's scopes, with ownership.

    Until eda_gateway has wired its services (``ownership`` unset) everything is refused:
    a server whose eda_gateway did not load must not share everything.
    """

    ownership = Instance(Ownership, allow_none=True, help="Set when eda_gateway wires its services.")

    def has_scope(self, user: Any, scope: str) -> bool:
        """Whether ``user`` (a User or a username) has ``scope``."""
        return self.ownership is not None and self.ownership.roles.has_scope(name_of(user), scope)

    def may_read_user(self, user: Any, other: str) -> bool:
        """Reading another user's budget, history or events takes ``eda:admin``."""
        username = name_of(user)
        return self.ownership is not None and username is not None and (
            other == username or self.has_scope(username, ADMIN)
        )

    def is_authorized(self, handler, user: Any, action: str, resource: str) -> bool:
        ownership = self.ownership
        username = name_of(user)
        if ownership is None or username is None:
            return False
        if resource in SCOPES:
            return ownership.roles.has_scope(username, resource)
        if ownership.sees_everything(username):
            return True
        if resource in ADMIN_ONLY:
            refused = ADMIN_ONLY[resource]
            if refused is None or action in refused:
                return False
        kwargs = getattr(handler, "path_kwargs", None) or {}
        kernel_id = kwargs.get("kernel_id")
        if kernel_id and resource == "kernels" and ownership.kernel_exists(kernel_id):
            return ownership.may_use_kernel(username, kernel_id)  # unknown: the handler answers 404
        session_id = kwargs.get("session_id")
        if session_id and resource == "sessions":
            return ownership.may_use_session(username, session_id)
        return True


def handler_has_scope(handler, scope: str) -> bool:
    """For handlers that are not ours (JupyterLab's, jupyter_server's): whether the
    request's user has ``scope``, asked of the server's authorizer."""
    authorizer = handler.settings.get("authorizer")
    user = handler.current_user
    return isinstance(authorizer, EDAAuthorizer) and user is not None and authorizer.has_scope(user, scope)
