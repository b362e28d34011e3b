"""Kernels must not reach each other: confinement layers around each kernel.

See docs/isolation.md. ``wrap_launch`` is what the kernel provisioner calls.
"""

from __future__ import annotations

from .layers import LAYERS, IsolationUnavailable, parse_choice
from .service import Isolation


def wrap_launch(provisioner, launch_kwargs: dict) -> dict:
    """Confine one kernel launch (no-op outside an eda_gateway server)."""
    km = getattr(provisioner, "parent", None)
    gateway = getattr(getattr(km, "parent", None), "eda_gateway", None)
    isolation = getattr(gateway, "isolation", None)
    if isolation is None:
        return launch_kwargs
    return isolation.wrap(provisioner, launch_kwargs)


__all__ = ["LAYERS", "Isolation", "IsolationUnavailable", "parse_choice", "start_isolation", "wrap_launch"]


def start_isolation(gateway) -> Isolation:
    """Pick the layers for this server (log line names them); exit if an explicit choice cannot be had."""
    import sys

    isolation = Isolation(gateway, gateway.sandbox_config, gateway.log)
    try:
        isolation.start()
    except IsolationUnavailable as e:
        gateway.log.critical("eda_gateway: bad configuration: %s", e)
        sys.exit(f"eda_gateway: bad configuration: {e}")
    gateway.kernel_manager.listeners.append(isolation.on_kernel_event)
    return isolation
