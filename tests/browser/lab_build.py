"""Serve this checkout's JupyterLab extension build in browser tests."""

from __future__ import annotations

from pathlib import Path

BUILT_LABEXTENSION = Path(__file__).resolve().parents[2] / "eda_gateway" / "labextension"


def checkout_labextension_env(tmp: Path) -> dict:
    """Environment that makes a server serve this checkout's build, not an older installed copy."""
    if not (BUILT_LABEXTENSION / "package.json").exists():
        return {}
    shadow = tmp / "jupyter_path" / "labextensions"
    shadow.mkdir(parents=True)
    (shadow / "eda-gateway").symlink_to(BUILT_LABEXTENSION)
    return {"JUPYTER_PATH": str(tmp / "jupyter_path")}
