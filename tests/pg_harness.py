"""A real PostgreSQL server for tests: its own data folder, a free loopback port, stopped at the end.

Debian's server binaries (``apt-get install postgresql``: /usr/lib/postgresql/<major>/bin).
postgres refuses to run as root: as root, every command runs as the ``postgres`` OS user
(the package creates it) in folders it owns. Test clients connect over TCP as ``eda`` with
a password (scram-sha-256), as a server would; the harness itself as the superuser over the
Unix socket (trusted locally).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from harness import free_port

STRICT = os.environ.get("EDA_STRICT") == "1"
USER, PASSWORD = "eda", "pg-s3cret-word"  # the password must never show in a log


def bin_dir() -> Path | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def require_postgres() -> Path:
    """The bin folder; without one: skip, or fail under EDA_STRICT=1."""
    found = bin_dir()
    why = None
    if found is None:
        why = "PostgreSQL server binaries not found (apt-get install postgresql)"
    elif os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            why = "running as root, and there is no postgres OS user to run the server as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        why = why or 'psycopg is not installed (pip install "psycopg[binary]")'
    if why:
        if STRICT:
            pytest.fail(f"EDA_STRICT=1 and {why}")
        pytest.skip(why)
    return found


class PostgresServer:
    """``with PostgresServer(tmp) as pg``: initdb, start; ``pg.create_database()`` gives a URL."""

    def __init__(self, tmp: Path, bindir: Path | None = None) -> None:
        self.bindir = bindir or require_postgres()
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        # as root: under /tmp, not in pytest's tmp_path (0700, root's), so the postgres user
        # can reach it; removed on exit
        self.home = Path(tempfile.mkdtemp(prefix="eda-pg-", dir=tmp if not self.as_root else None))
        self.data = self.home / "data"
        self.sockets = self.home / "sockets"
        self.log_path = self.home / "server.log"
        self.sockets.mkdir()
        if self.as_root:
            os.chmod(self.home, 0o755)
            for path in (self.home, self.sockets):
                shutil.chown(path, "postgres", "postgres")
        self._databases = 0
        self._role = False

    def __enter__(self) -> PostgresServer:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.home)
        if done.returncode:
            raise RuntimeError(f"{tool} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{self.log()}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions")

    def start(self) -> None:
        """Start (again, after stop(): same data, same port)."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "-t", "60", "start")
        if not self._role:
            with self.admin() as conn:
                conn.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
            self._role = True

    def stop(self) -> None:
        """Fast shutdown: clients' connections are cut, as when a database server goes down."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def admin(self):
        """The superuser's connection (autocommit), over the Unix socket."""
        import psycopg

        return psycopg.connect(host=str(self.sockets), port=self.port, user="postgres", dbname="postgres",
                               autocommit=True)

    def create_database(self) -> str:
        """A fresh database owned by ``eda``; its URL, password included."""
        self._databases += 1
        name = f"history_{self._databases}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {USER}")
        return self.url(name)

    def url(self, dbname: str, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{dbname}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (FileNotFoundError, PermissionError):
            return ""


class CommitCuttingProxy:
    """A TCP relay to PostgreSQL that can lose one COMMIT's answer, as a network does.

    ``cut_next_commit()`` arms it: the next time a client sends ``COMMIT`` (a simple query),
    the relay passes it on, waits for the server's answer (by then the transaction is
    committed), drops that answer and closes both ends. The client sees its connection go
    during COMMIT, not knowing whether its transaction landed. Everything else passes through.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0  # COMMIT answers dropped so far
        self._armed = threading.Event()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        return url.replace(f"127.0.0.1:{self.target_port}/", f"127.0.0.1:{self.port}/")

    def cut_next_commit(self) -> None:
        self._armed.set()

    def close(self) -> None:
        self._closing = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            committing = threading.Event()
            threading.Thread(target=self._to_server, args=(client, server, committing), daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client, committing), daemon=True).start()

    def _to_server(self, client: socket.socket, server: socket.socket, committing: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self._armed.is_set() and b"Q\x00\x00\x00\x0bCOMMIT\x00" in data:
                    self._armed.clear()
                    committing.set()  # the server's next answer is dropped
                server.sendall(data)
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _to_client(self, server: socket.socket, client: socket.socket, committing: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if committing.is_set():
                    self.cuts += 1
                    break  # committed, and the client will never hear it
                client.sendall(data)
        for end in (client, server):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
