"""JupyterHub: where this server runs under a Hub, and what the Hub says of each user.

Two ways of running under a Hub (docs/jupyterhub.md):

- **a Hub service** (``$JUPYTERHUB_SERVICE_NAME``): one shared server; the Hub's OAuth
  and API tokens name the users;
- **a Hub-spawned single-user server** (``$JUPYTERHUB_USER``): the Hub names its
  owner, who is its admin; people the Hub shares it with are other users.

Either way jupyter_server runs with JupyterHub's ``JupyterHubIdentityProvider``, whose
users carry the Hub's model of them (``hub_user``: name, groups, admin). Every request
it authenticates refreshes :class:`HubMembership`, from which eda_gateway takes Hub
groups as its groups and Hub admins as its admins: read from the Hub, never copied
into config. The Hub's answer is cached by JupyterHub's ``HubAuth.cache_max_age``
(5 minutes by default): a change at the Hub holds from the user's next request after that.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass

# jupyterhub-singleuser's server extension: it sets the Hub's identity provider when it links
HUB_EXTENSION = "jupyterhub"


def hub_identity_provider_class() -> type | None:
    """JupyterHub's identity provider class, or None without JupyterHub installed."""
    try:
        from jupyterhub.singleuser.extension import JupyterHubIdentityProvider
    except ImportError:
        return None
    return JupyterHubIdentityProvider


def is_hub_provider(provider_class: type) -> bool:
    hub_class = hub_identity_provider_class()
    return hub_class is not None and isinstance(provider_class, type) and issubclass(provider_class, hub_class)


@dataclass(frozen=True)
class HubPlace:
    """Where the Hub started this server: as ``service`` or as ``owner``'s server."""

    owner: str = ""  # the owner of a Hub-spawned single-user server
    service: str = ""  # the name of a Hub service

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> HubPlace:
        service = environ.get("JUPYTERHUB_SERVICE_NAME", "")
        # a service has no owner; only a spawned server is given $JUPYTERHUB_USER
        return cls(owner="" if service else environ.get("JUPYTERHUB_USER", ""), service=service)

    @property
    def under_hub(self) -> bool:
        return bool(self.owner or self.service)


MIB = 1024 * 1024


def spawner_limits(environ: Mapping[str, str] = os.environ) -> tuple[int | None, float | None]:
    """The Hub's limits of this whole server, as its spawner passes them: ``$MEM_LIMIT``
    (bytes) and ``$CPU_LIMIT`` (cores); None where not set or unreadable."""

    def number(name):
        try:
            value = float(environ.get(name, ""))
        except ValueError:
            return None
        return value if value > 0 else None

    memory = number("MEM_LIMIT")
    return (int(memory) if memory else None), number("CPU_LIMIT")


def limits_that_do_not_fit(mem_limit: int | None, cpu_limit: float | None, kernels: int,
                           kernel_memory_mb: int, kernel_cpu_percent: float) -> list[str]:
    """Where ``kernels`` kernels at their own limits need more than the Hub gives the server:
    then the Hub's limit (the whole server killed, or all of it throttled) comes before
    eda_gateway's per-kernel verdicts. Empty when they fit (docs/jupyterhub.md)."""
    found = []
    needed_mb = kernels * kernel_memory_mb
    if mem_limit is not None and needed_mb * MIB >= mem_limit:
        found.append(f"{kernels} kernels x {kernel_memory_mb} MiB = {needed_mb} MiB, but the Hub's mem_limit "
                     f"for the whole server is {mem_limit // MIB} MiB (and the server itself needs some)")
    cores = kernels * kernel_cpu_percent / 100
    if cpu_limit is not None and cores > cpu_limit:
        found.append(f"{kernels} kernels x {kernel_cpu_percent:g}% of a core = {cores:g} cores, but the Hub's "
                     f"cpu_limit is {cpu_limit:g}")
    return found


def link_hub_extension_first(serverapp) -> None:
    """Link jupyterhub-singleuser's extension before eda_gateway's.

    Extensions link in name order, and the Hub's sets ``ServerApp.identity_provider_class``
    when it links: eda_gateway ("eda_gateway" < "jupyterhub") would otherwise choose its
    identity mode from jupyter_server's default provider and take every Hub user for one owner.
    """
    manager = serverapp.extension_manager
    if HUB_EXTENSION in manager.extensions:
        manager.link_extension(HUB_EXTENSION)  # once: the manager skips what is linked


class HubMembership:
    """The groups and the admin flag the Hub last gave for each user it identified."""

    def __init__(self) -> None:
        self._groups: dict[str, frozenset[str]] = {}
        self._admins: set[str] = set()

    def record(self, model: Mapping) -> None:
        """Keep what a Hub user model (``/hub/api/user``) says of its user."""
        name = model.get("name")
        if not isinstance(name, str) or not name or model.get("kind", "user") != "user":
            return  # services act as nobody's user here
        groups = model.get("groups")
        if isinstance(groups, list):
            self._groups[name] = frozenset(g for g in groups if isinstance(g, str))
        if model.get("admin") is True:
            self._admins.add(name)
        elif "admin" in model:
            self._admins.discard(name)

    def groups_of(self, username: str) -> frozenset[str]:
        return self._groups.get(username, frozenset())

    def is_admin(self, username: str) -> bool:
        return username in self._admins


def recording_provider(base: type, membership: HubMembership) -> type:
    """``base`` (JupyterHub's identity provider), telling ``membership`` what the Hub said
    of every user it authenticates.

    A Hub *service*'s token is refused: services and users are named apart at the Hub, so
    a service called "alice" would otherwise be taken for the user alice here. A service
    acts for a user with that user's token.
    """

    async def get_user(self, handler):
        user = base.get_user(self, handler)
        if inspect.isawaitable(user):
            user = await user
        model = getattr(user, "hub_user", None)
        if isinstance(model, Mapping):
            if model.get("kind", "user") != "user":
                self.log.warning("eda_gateway: refused the Hub %s %r: only users' tokens name users here",
                                 model.get("kind"), model.get("name"))
                return None
            membership.record(model)
        return user

    return type(
        base.__name__,
        (base,),
        {"get_user": get_user, "__module__": __name__,
         "__doc__": f"{base.__name__}; the Hub's groups and admins reach eda_gateway."},
    )
