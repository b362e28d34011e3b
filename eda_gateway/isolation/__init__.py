"""Kernels must not reach each other: confinement layers around each kernel.

See docs/isolation.md. ``wrap_launch`` is what the kernel provisioner calls.

This package's ``__init__`` imports nothing heavy: every kernel launch runs
``python -m eda_gateway.isolation.launch``, which imports it first, and the
server-side modules (``service``: contents, nbformat, jupyter_server) cost seconds
of a CPU-capped kernel's start.
"""

from __future__ import annotations

__all__ = ["LAYERS", "Isolation", "IsolationUnavailable", "parse_choice", "start_isolation", "wrap_launch"]


def __getattr__(name: str):  # the server-side names, imported when first asked for
    if name in ("LAYERS", "IsolationUnavailable", "parse_choice"):
        from . import layers

        return getattr(layers, name)
    if name == "Isolation":
        from .service import Isolation

        return Isolation
    raise AttributeError(name)


def wrap_launch(provisioner, launch_kwargs: dict) -> dict:
    """Confine one kernel launch (no-op outside an eda_gateway server)."""
    km = getattr(provisioner, "parent", None)
    gateway = getattr(getattr(km, "parent", None), "eda_gateway", None)
    isolation = getattr(gateway, "isolation", None)
    if isolation is None:
        return launch_kwargs
    return isolation.wrap(provisioner, launch_kwargs)


def start_isolation(gateway):
    """Pick the layers for this server (log line names them); exit if an explicit choice cannot be had."""
    import sys

    from .layers import IsolationUnavailable
    from .service import Isolation

    isolation = Isolation(gateway, gateway.sandbox_config, gateway.log)
    try:
        isolation.start()
    except IsolationUnavailable as e:
        gateway.log.critical("eda_gateway: bad configuration: %s", e)
        sys.exit(f"eda_gateway: bad configuration: {e}")
    gateway.kernel_manager.listeners.append(isolation.on_kernel_event)
    return isolation
