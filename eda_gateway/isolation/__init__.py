"""Kernels must not reach each other: confinement layers around each kernel.

See docs/isolation.md. ``Isolation.wrap`` is isolation's step of the launch chain
(eda_gateway/sandbox/launcher.py); its settings are ``EDAIsolation`` (``settings``).

This package's ``__init__`` imports nothing heavy: every kernel launch runs
``python -m eda_gateway.isolation.launch``, which imports it first, and the
server-side modules (``service``: contents, nbformat, jupyter_server) cost seconds
of a CPU-capped kernel's start.
"""

from __future__ import annotations

__all__ = ["LAYERS", "EDAIsolation", "Isolation", "IsolationUnavailable", "parse_choice"]


def __getattr__(name: str):  # the server-side names, imported when first asked for
    if name in ("LAYERS", "IsolationUnavailable", "parse_choice"):
        from . import layers

        return getattr(layers, name)
    if name == "Isolation":
        from .service import Isolation

        return Isolation
    if name == "EDAIsolation":
        from .settings import EDAIsolation

        return EDAIsolation
    raise AttributeError(name)
