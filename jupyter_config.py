# eda_gateway: an example configuration for admins (used by the demo).
# Start with:  jupyter lab --config=jupyter_config.py
# Every setting below shows its default unless a comment says otherwise.
c = get_config()  # noqa: F821

# --- who is who --------------------------------------------------------------
# Any jupyter_server IdentityProvider works; this one maps one token to each user.
c.ServerApp.identity_provider_class = "eda_gateway.auth.EDAIdentityProvider"
c.EDAIdentityProvider.user_tokens = {
    # Demo tokens: replace them. A token may also be stored hashed:
    #   python -c "import hashlib,sys; print('sha256:'+hashlib.sha256(sys.argv[1].encode()).hexdigest())" TOKEN
    "alice": "alice-demo-token",
    "bob": "bob-demo-token-0",
    "admin": "sha256:" + __import__("hashlib").sha256(b"admin-demo-token").hexdigest(),
}
c.EDAGateway.admin_users = {"admin"}
c.EDAGateway.groups = {"analysts": ["alice", "bob"]}

# --- sandbox, per kernel -----------------------------------------------------
c.EDASandbox.max_execution_time = 30  # seconds of wall time per execution
c.EDASandbox.max_memory_mb = 512  # whole kernel process tree
c.EDASandbox.max_disk_mb = 1024  # workspace + content folder per user, one ext4 volume each (0: none)
c.EDASandbox.max_cpu_percent = 50  # % of one core: throttled, not killed
c.EDASandbox.enforcement = "auto"  # auto | cgroup | psutil

# --- rate limiting, per user, shared by notebooks and the REST API ------------
c.EDARateLimiter.max_executions_per_minute = 10
c.EDARateLimiter.max_concurrent_executions = 2
c.EDARateLimiter.window_seconds = 60

c.EDAGateway.max_kernels_per_user = 4
c.EDAGateway.workspace_root = "/tmp"  # each user gets /tmp/eda_user_<user_id>/ (mode 0700); one server each
c.EDAGateway.cleanup_interval = 3600  # seconds between clean-ups of old temp files
c.EDAGateway.temp_file_max_age = 86400  # seconds

# --- per user or per group ("@group") overrides of any limit above -----------
c.EDAGateway.user_limits = {
    "alice": {"max_memory_mb": 1024},
    "@analysts": {"max_executions_per_minute": 20},
}

# --- the demo serves notebooks from a folder of its own ----------------------
import os  # noqa: E402

_demo_root = os.environ.get("EDA_DEMO_ROOT")
if _demo_root:
    c.ServerApp.root_dir = _demo_root
_demo_state = os.environ.get("EDA_DEMO_STATE")
if _demo_state:
    # managed-deployment defaults for JupyterLab (scripts/demo.sh writes overrides.json there):
    # no "get notified about official Jupyter news?" prompt for every user
    c.LabApp.app_settings_dir = os.path.join(_demo_state, "lab-app-settings")
    # all of the demo's state in its folder: another server on this host keeps its own
    # (the history and disk images follow JUPYTER_DATA_DIR, which scripts/demo.sh sets)
    c.EDAGateway.workspace_root = os.path.join(_demo_state, "workspaces")
_demo_data = os.environ.get("EDA_DEMO_DATA")
if _demo_data:
    # datasets ("sources") and who may use them; admins may use all
    c.EDAGateway.datasets = {
        "sales": {
            "path": os.path.join(_demo_data, "sales.csv"),
            "users": ["alice"],
            "groups": ["analysts"],
            "description": "Daily sales 2024 by region (demo data)",
        },
    }
