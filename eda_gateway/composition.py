"""Our manager classes on the server, built on an admin's own where they allow it.

eda_gateway's protection lives in subclasses of jupyter_server's classes (kernel,
session and contents managers, the kernel websocket connection). An admin may have
configured their own class for one of them; then ours is mixed in front of theirs
when both share jupyter_server's base, and start-up stops with a message naming the
setting when they do not (a shared server must not start half-guarded).
"""

from __future__ import annotations

from traitlets.utils.importstring import import_item


class CannotCompose(Exception):
    """An admin's class eda_gateway cannot build on; the message names the setting."""


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def configured_class(serverapp, trait: str) -> type | None:
    """The class an admin set for ``ServerApp.<trait>``, if any."""
    configured = serverapp.config.get("ServerApp", {}).get(trait)
    if configured is None:
        return None
    chosen = import_item(configured) if isinstance(configured, str) else configured
    if not isinstance(chosen, type):
        raise CannotCompose(f"ServerApp.{trait} = {configured!r} is not a class")
    return chosen


def compose(serverapp, trait: str, ours: type, base: type, protects: str) -> type:
    """The class to use for ``ServerApp.<trait>``: ours, or ours on top of the admin's."""
    chosen = configured_class(serverapp, trait)
    if chosen is None or issubclass(ours, chosen):
        return ours  # nothing configured, or jupyter_server's own class that ours extends
    if issubclass(chosen, ours):
        return chosen  # already built on ours
    if issubclass(chosen, base):
        try:
            return type(chosen.__name__, (ours, chosen), {"__module__": chosen.__module__,
                                                          "__doc__": f"{ours.__name__} on {_qualname(chosen)}"})
        except TypeError as e:  # no consistent method order
            why = str(e)
    else:
        why = f"it is not a subclass of {_qualname(base)}"
    raise CannotCompose(
        f"ServerApp.{trait} = {_qualname(chosen)} cannot carry eda_gateway's {protects} ({why}): "
        f"derive it from {_qualname(base)} (or from {_qualname(ours)}), or remove the setting"
    )


def install(serverapp, trait: str, cls: type) -> None:
    """Use ``cls`` for ``ServerApp.<trait>``, also when the server reloads its config."""
    setattr(serverapp, trait, cls)
    serverapp.config.ServerApp[trait] = cls
