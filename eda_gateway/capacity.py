"""Size the server's ZMQ context and open-files limit for the connections it admits.

pyzmq's context allows 1023 sockets by default and a process often 1024 open files:
about 250 kernel websockets exhaust either, and then *every* user's connections and
kernel starts fail. At start-up, before any socket exists, both are raised to what the
admitted connections and kernels can need, so that running out is never what stops a
connection: the connection caps (eda_gateway/connections.py) refuse it first. If the
hard fd limit is lower than needed, the server-wide connection budget shrinks to fit.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

import zmq

# A kernel websocket: iopub, shell, control, stdin, plus the shell socket that asks for
# kernel_info while it opens.
SOCKETS_PER_CONNECTION = 5
# A kernel's own: jupyter_server's activity stream, the lease keeper's iopub stream, the
# REST execution client's 5 channels, 4 channels buffered after its last websocket
# closed, one kernel_info request.
SOCKETS_PER_KERNEL = 12
HEADROOM_SOCKETS = 256  # anything else in the server (other extensions, terminals' none)
# A ZMQ socket holds its mailbox's fd and its TCP connection's; a websocket its own.
FDS_PER_SOCKET = 2
HEADROOM_FDS = 1024  # files, HTTP clients, SQLite, sandbox, kernels' pipes


@dataclass(frozen=True)
class Plan:
    connections: int  # kernel websockets the server admits at once
    max_sockets: int  # zmq.MAX_SOCKETS of the context
    open_files: int  # RLIMIT_NOFILE (soft) the server needs


def plan(connections: int, kernels: int) -> Plan:
    sockets = connections * SOCKETS_PER_CONNECTION + kernels * SOCKETS_PER_KERNEL + HEADROOM_SOCKETS
    return Plan(connections, sockets, sockets * FDS_PER_SOCKET + connections + HEADROOM_FDS)


def fit(wanted: Plan, kernels: int, hard_files: int, socket_limit: int) -> Plan:
    """The largest plan within the hard fd limit and libzmq's socket limit."""
    connections = wanted.connections
    while connections > 0:
        p = plan(connections, kernels)
        if p.open_files <= hard_files and p.max_sockets <= socket_limit:
            return p
        connections = connections * 9 // 10
    return plan(0, kernels)


def apply(wanted: Plan, kernels: int, contexts, log) -> Plan:
    """Raise the soft fd limit and each context's MAX_SOCKETS; returns what was set."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard_files = hard if hard != resource.RLIM_INFINITY else 1 << 20
    contexts = list({id(c): c for c in contexts}.values())
    socket_limit = min(c.get(zmq.SOCKET_LIMIT) for c in contexts) if contexts else 1 << 16
    chosen = fit(wanted, kernels, hard_files, socket_limit)
    if chosen.connections < wanted.connections:
        log.warning(
            "eda_gateway: %d kernel connections need %d open files and %d ZMQ sockets; this host allows "
            "%d files (hard limit) and %d sockets: serving at most %d connections",
            wanted.connections, wanted.open_files, wanted.max_sockets, hard_files, socket_limit,
            chosen.connections,
        )
    if soft != resource.RLIM_INFINITY and soft < chosen.open_files:
        resource.setrlimit(resource.RLIMIT_NOFILE, (chosen.open_files, hard))
    for context in contexts:
        if context.get(zmq.MAX_SOCKETS) < chosen.max_sockets:
            context.set(zmq.MAX_SOCKETS, chosen.max_sockets)
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    log.info(
        "eda_gateway: sized for %d kernel connections: ZMQ MAX_SOCKETS %s, open files limit %s (was %s)",
        chosen.connections, [c.get(zmq.MAX_SOCKETS) for c in contexts], files, soft,
    )
    return chosen
