"""What both example Hubs share: ports, state folder, the proxy, the demo login and users.

Loaded by each example's jupyterhub_config.py (``load_subconfig``). Every value can be
moved with an environment variable, so the tests (tests/test_jupyterhub_service.py,
tests/test_jupyterhub_singleuser.py, tests/browser/test_hub_login.py) run these very files
on free loopback ports and in folders of their own.
"""

import os
import shutil

c = get_config()  # noqa: F821

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(here))
state = os.path.abspath(os.environ.get("EDA_HUB_STATE", "eda-hub-state"))
os.makedirs(state, exist_ok=True)

# --- where it listens: the public proxy, the Hub's API, the proxy's API -------
c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ.get('EDA_HUB_PORT', '8000')}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ.get('EDA_HUB_API_PORT', '8081')}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('EDA_HUB_PROXY_API_PORT', '8001')}"

# --- its state: database, cookie secret, proxy pid, all in one folder ----------
c.JupyterHub.db_url = "sqlite:///" + os.path.join(state, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(state, "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = os.path.join(state, "jupyterhub-proxy.pid")

# configurable-http-proxy (npm): scripts/setup.sh installs it in .venv/node
_proxy = os.path.join(repo, ".venv", "node", "node_modules", ".bin", "configurable-http-proxy")
c.ConfigurableHTTPProxy.command = [_proxy if os.path.exists(_proxy) else shutil.which("configurable-http-proxy")
                                   or "configurable-http-proxy"]

# --- the demo's login: any Authenticator works (OAuthenticator, LDAP, PAM, ...) ---
# DummyAuthenticator: one shared password, for a demo on one machine only.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ.get("EDA_HUB_PASSWORD", "eda-demo-password")
c.Authenticator.allowed_users = {"alice", "bob", "carol", "erin", "ada"}
c.Authenticator.admin_users = {"ada"}  # a Hub admin: an eda_gateway admin too
# Hub groups: eda_gateway reads them from the Hub (limits for "@analysts", admins by group)
c.JupyterHub.load_groups = {
    "analysts": {"users": ["alice", "bob"]},
    "eda-admins": {"users": ["erin"]},
}

# --- spawning: a busy machine may take a minute or more to start a server --------
c.Spawner.start_timeout = 180  # JupyterHub's default: 60 s
c.Spawner.http_timeout = 120  # JupyterHub's default: 30 s
