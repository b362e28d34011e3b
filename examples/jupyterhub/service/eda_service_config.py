"""jupyter_server settings of the shared eda_gateway service (started by the Hub).

The Hub provides the login (JupyterHubIdentityProvider): no user_tokens here. Hub groups
are eda_gateway groups and Hub admins are eda_gateway admins, read from the Hub.
"""

import os

c = get_config()  # noqa: F821
state = os.environ["EDA_HUB_STATE"]

c.EDAGateway.admin_groups = {"eda-admins"}  # members of this Hub group are admins too
c.EDAGateway.user_limits = {"@analysts": {"max_executions_per_minute": 20}}  # a Hub group
c.EDAGateway.workspace_root = os.path.join(state, "eda-workspaces")
c.EDAGateway.history_db = os.path.join(state, "eda_history.sqlite")
c.EDASandbox.disk_root = os.path.join(state, "eda-disks")
c.ServerApp.root_dir = os.path.join(state, "notebooks")  # each user works in <root_dir>/<name>/
os.makedirs(c.ServerApp.root_dir, exist_ok=True)
c.ServerApp.allow_root = os.getuid() == 0  # the demo's Hub may run as root; kernels are still confined
