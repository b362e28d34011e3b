"""One shared eda_gateway for everyone, as a JupyterHub-managed service.

People log in at the Hub and open /services/eda/lab; eda_gateway knows them by their
Hub name (Hub OAuth for browsers, Hub API tokens for scripts and agents), takes their
Hub groups as its groups and Hub admins as its admins. Only users granted
``access:services!service=eda`` reach it (here: the groups "analysts" and "eda-admins";
carol is a Hub user without access: she gets 403).

    jupyterhub -f examples/jupyterhub/service/jupyterhub_config.py

docs/jupyterhub.md explains every setting.
"""

import os
import sys

c = get_config()  # noqa: F821
here = os.path.dirname(os.path.abspath(__file__))
load_subconfig(os.path.join(here, "..", "common.py"))  # noqa: F821 (ports, state, proxy, demo login)
state = os.path.abspath(os.environ.get("EDA_HUB_STATE", "eda-hub-state"))

# The Hub's home page lists the service. A user who also starts a server of their own gets
# one whose kernels run on the service (jupyter_server's GatewayClient): the same limits,
# the same budget, the same kernels as in /services/eda/lab.
c.JupyterHub.default_url = "/hub/home"
c.JupyterHub.spawner_class = "simple"  # a demo on one machine: see ../singleuser/ for production spawners
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(state, "home", "{username}")
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = [f"--config={os.path.join(here, 'gateway_client_config.py')}"]
c.Spawner.environment = {"EDA_SERVICE_URL": f"{c.JupyterHub.bind_url}/services/eda"}
# the server's $JUPYTERHUB_API_TOKEN may also reach the service (as its user): GatewayClient's token
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "access:services!service=eda"]

c.JupyterHub.services = [
    {
        "name": "eda",
        "url": f"http://127.0.0.1:{os.environ.get('EDA_SERVICE_PORT', '10101')}",
        # jupyterhub-singleuser: jupyter_server with the Hub's OAuth login; eda_gateway loads
        # as the server extension it is, with the settings of eda_service_config.py
        "command": [sys.executable, "-m", "jupyterhub.singleuser",
                    f"--config={os.path.join(here, 'eda_service_config.py')}"],
        "cwd": state,
        # a managed service gets only this environment (and the Hub's JUPYTERHUB_* variables)
        "environment": {"EDA_HUB_STATE": state,
                        **{k: os.environ[k] for k in ("JUPYTER_PATH", "PATH") if k in os.environ}},
        "oauth_no_confirm": True,  # part of this Hub: no "authorize eda?" page
        "display": True,  # listed on the Hub's home page
    },
]

# Who may use the service: a role, granted by Hub group (or to users one by one).
c.JupyterHub.load_roles = [
    {
        "name": "eda-users",
        "description": "Use the shared eda_gateway service",
        "scopes": ["access:services!service=eda"],
        "groups": ["analysts", "eda-admins"],
    },
]
