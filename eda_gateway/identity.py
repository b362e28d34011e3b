"""Who the users are: one owner (a personal server) or many named users.

jupyter_server's own identity providers (its default token or password login, or
no authentication at all) do not name users: every token-only request, or every
browser without a cookie, is a new random "anonymous" user. Owning kernels and
files per user on top of that breaks every client (a kernel started by one request
is another user's for the next). So eda_gateway runs in one of two modes:

- **single-user**: the server's token holder is one stable owner (the server's OS
  user by default, ``EDAGateway.single_user_name``), who may do everything a plain
  ``jupyter lab`` allows; only the limits are added.
- **multi-user**: an identity provider that names users (``EDAIdentityProvider``,
  JupyterHub's, any other subclass) and everything per user. In a Hub-spawned
  single-user server (eda_gateway/hub.py) the Hub names the server's ``owner``, who
  is its admin, as in a plain Hub server; anyone the Hub shares it with is another user.

``EDAGateway.identity_mode = "auto"`` picks single-user exactly for jupyter_server's
own providers; start-up logs the choice and why.
"""

from __future__ import annotations

import getpass
import inspect
from dataclasses import dataclass

from jupyter_server.auth.identity import (
    IdentityProvider,
    LegacyIdentityProvider,
    PasswordIdentityProvider,
    User,
)

from .hub import is_hub_provider

SINGLE_USER = "single-user"
MULTI_USER = "multi-user"
MODES = ("auto", SINGLE_USER, MULTI_USER)

# jupyter_server's providers that authenticate without naming anybody.
UNNAMED_PROVIDERS = (IdentityProvider, PasswordIdentityProvider, LegacyIdentityProvider)


def default_owner() -> str:
    """The server's OS user name (what a personal ``jupyter lab`` runs as)."""
    try:
        return getpass.getuser() or "owner"
    except (KeyError, OSError):  # no passwd entry (containers with arbitrary uids)
        return "owner"


@dataclass(frozen=True)
class IdentityMode:
    single_user: bool
    owner: str  # the single user's name; in multi-user mode a Hub server's owner, or ""
    why: str

    @property
    def personal(self) -> bool:
        """One person's server (a personal jupyter lab, or the Hub's server of its owner):
        nobody else's files, tokens or disk to keep apart from the owner's."""
        return bool(self.owner)

    def describe(self) -> str:
        if self.single_user:
            return f"single-user mode: every authenticated request is {self.owner!r} ({self.why})"
        return f"multi-user mode: {self.why}"


def choose_mode(setting: str, provider_class: type, owner: str, hub_owner: str = "") -> IdentityMode:
    """The mode for ``EDAGateway.identity_mode`` = ``setting`` under ``provider_class``;
    ``hub_owner``: the Hub's owner of this server, when the Hub spawned it for a user."""
    name = f"{provider_class.__module__}.{provider_class.__qualname__}"
    if setting == SINGLE_USER:
        return IdentityMode(True, owner, "EDAGateway.identity_mode is 'single-user'")
    if hub_owner and setting == "auto" and is_hub_provider(provider_class):
        return IdentityMode(
            False, hub_owner,
            f"JupyterHub's server of {hub_owner!r}, who is its admin; users the Hub shares it with are kept apart",
        )
    if setting == MULTI_USER:
        return IdentityMode(False, "", f"EDAGateway.identity_mode is 'multi-user' (identity provider {name})")
    if provider_class in UNNAMED_PROVIDERS:
        return IdentityMode(
            True, owner,
            f"{name} does not name users; set ServerApp.identity_provider_class to one that does "
            "(e.g. eda_gateway.auth.EDAIdentityProvider) to share this server",
        )
    return IdentityMode(False, "", f"identity provider {name} names users")


def single_owner_provider(base: type[IdentityProvider], owner: str) -> type[IdentityProvider]:
    """``base``, with every user it authenticates answered as ``owner``.

    Authentication itself (tokens, passwords, cookies) stays ``base``'s; only the
    name of whoever passed it is made stable.
    """

    async def get_user(self, handler):
        user = base.get_user(self, handler)
        if inspect.isawaitable(user):
            user = await user
        if user is None:
            return None
        return User(username=owner, name=owner, display_name=owner, color=user.color)

    return type(
        f"SingleOwner{base.__name__}",
        (base,),
        {"get_user": get_user, "__module__": __name__, "__doc__": f"{base.__name__}; every user is {owner!r}."},
    )
