"""eda_gateway: share one Jupyter server safely among many users."""

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    from .app import EDAGateway

    return [{"module": "eda_gateway.app", "app": EDAGateway}]


def _jupyter_labextension_paths():
    # The prebuilt JupyterLab extension, built from labextension/ on install.
    return [{"src": "labextension", "dest": "eda-gateway"}]
