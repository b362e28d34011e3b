"""The budget levels (``normal``, ``medium``, ``high``, ``limited``) and the shares at which
they start, read from the ``Level`` schema of openapi.json (``x-thresholds``) so the server
and the UI (labextension/src/api-types.ts, generated from the same document) share one
definition."""

from __future__ import annotations

import json
from importlib import resources
from types import MappingProxyType


def _thresholds() -> MappingProxyType:
    document = json.loads(resources.files("eda_gateway").joinpath("openapi.json").read_text(encoding="utf-8"))
    found = document["components"]["schemas"]["Level"]["x-thresholds"]
    return MappingProxyType({"medium": float(found["medium"]), "high": float(found["high"])})


#: Share of the window's executions at which ``medium`` and ``high`` start.
LEVEL_THRESHOLDS = _thresholds()


def level_of(used_share: float, limited: bool) -> str:
    """The level of a user who used ``used_share`` of the window (0..1); ``limited`` when
    the next execution would be refused (window full, or every concurrent slot busy)."""
    if limited:
        return "limited"
    if used_share < LEVEL_THRESHOLDS["medium"]:
        return "normal"
    if used_share < LEVEL_THRESHOLDS["high"]:
        return "medium"
    return "high"
