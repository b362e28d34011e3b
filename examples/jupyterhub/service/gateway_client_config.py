"""jupyter_server settings of a user's own Hub-spawned server whose kernels run on the
shared eda_gateway service (jupyter_server's GatewayClient).

Its Hub API token ($JUPYTERHUB_API_TOKEN, allowed onto the service by
Spawner.server_token_scopes) names its owner there: the kernels are the owner's, under
the owner's limits and budget, listed in /services/eda/lab too.
"""

import os

c = get_config()  # noqa: F821

c.GatewayClient.url = os.environ["EDA_SERVICE_URL"]
c.GatewayClient.auth_token = os.environ["JUPYTERHUB_API_TOKEN"]
c.GatewayClient.request_timeout = 120.0  # a kernel start under the service's isolation takes seconds
c.ServerApp.allow_root = os.getuid() == 0  # the demo's spawner runs as the Hub's user
