"""A real ``redis-server`` (Debian's package, installed by scripts/setup.sh) on a free
loopback port, for the shared admission store's tests. It keeps nothing on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import free_port

STRICT = os.environ.get("EDA_STRICT") == "1"


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else "")
    if not found:
        message = "redis-server is missing: scripts/setup.sh installs Debian's redis-server"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return found


class RedisServer:
    def __init__(self, tmp: Path, port: int | None = None):
        self.tmp = tmp
        self._fixed = port is not None
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> RedisServer:
        """Start on ``port`` (or a free one); a free port taken meanwhile by another test's
        process is given up for another, unless the port was asked for."""
        fixed = self._fixed
        for _ in range(1 if fixed else 3):
            if self._start_once(timeout):
                return self
            self.port = free_port()
        raise RuntimeError(f"redis-server could not bind port {self.port}")

    def _start_once(self, timeout: float) -> bool:
        if not harness._servers_allowed["allowed"]:
            raise RuntimeError(f"{harness._servers_allowed['test']} starts redis-server but is not marked e2e")
        self._log = open(self.tmp / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:  # the port was taken: not our server answering
                    self._log.close()
                    self.proc = None
                    return False
                try:
                    # ours: the server answering knows the pid we started
                    if client.ping() and int(client.info("server")["process_id"]) == self.proc.pid:
                        return True
                except redis.ConnectionError:
                    time.sleep(0.05)
            raise RuntimeError(f"redis-server did not answer on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
            self._log.close()
        self.proc = None
