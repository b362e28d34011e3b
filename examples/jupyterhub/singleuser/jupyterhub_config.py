"""One server per user, spawned by JupyterHub, each with eda_gateway inside.

The Hub's spawner limits the whole server (mem_limit, cpu_limit); eda_gateway adds what
the Hub does not: per-execution limits and named verdicts, the execution budget across
notebooks and the REST API, the monitor and the runner. It knows the server's owner from
the Hub without extra config.

    jupyterhub -f examples/jupyterhub/singleuser/jupyterhub_config.py

docs/jupyterhub.md explains how the two kinds of limits fit together.
"""

import os
import sys

c = get_config()  # noqa: F821
here = os.path.dirname(os.path.abspath(__file__))
load_subconfig(os.path.join(here, "..", "common.py"))  # noqa: F821 (ports, state, proxy, demo login)
state = os.path.abspath(os.environ.get("EDA_HUB_STATE", "eda-hub-state"))

# SimpleLocalProcessSpawner runs every server as the Hub's own OS user, with HOME in
# <state>/home/<name>: a demo on one machine. In production use one that gives each user
# their own OS user or container (LocalProcessSpawner, SystemdSpawner, DockerSpawner,
# KubeSpawner): those also enforce mem_limit and cpu_limit below.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(state, "home", "{username}")
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = [f"--config={os.path.join(here, 'eda_singleuser_config.py')}"]
c.Spawner.default_url = "/lab"
c.Spawner.mem_limit = "3G"  # the whole server: eda_gateway's kernels (4 x 512 MB) fit inside
c.Spawner.cpu_limit = 2.0
# the budget the demo gives each user (tests make it small)
c.Spawner.environment = {"EDA_DEMO_EXECUTIONS_PER_MINUTE": os.environ.get("EDA_DEMO_EXECUTIONS_PER_MINUTE", "10")}

# Users may share their server (JupyterHub's sharing: /hub/api/shares/<name>/). Whoever it is
# shared with is another user inside it: their own kernels, folder and execution budget
# (read:users:name: to name whom to share with).
c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "shares!user", "read:users:name"]}]
