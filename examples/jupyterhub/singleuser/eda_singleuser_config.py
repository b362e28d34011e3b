"""jupyter_server settings inside each Hub-spawned single-user server.

Nothing about users: the Hub names the server's owner (who is its admin here, as in a
plain Hub server); people the Hub shares the server with are kept apart as other users.
"""

import os

c = get_config()  # noqa: F821

c.EDASandbox.max_execution_time = 30  # seconds per execution (ExecutionTimeout)
c.EDASandbox.max_memory_mb = 512  # per kernel (MemoryLimitExceeded)
c.EDARateLimiter.max_executions_per_minute = int(os.environ.get("EDA_DEMO_EXECUTIONS_PER_MINUTE", "10"))
c.EDARateLimiter.max_concurrent_executions = 2
c.ServerApp.allow_root = os.getuid() == 0  # the demo's spawner runs as the Hub's user; kernels are confined
