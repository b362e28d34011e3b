"""Where the usage history is kept: a SQLite file (one server's) or PostgreSQL (shared).

history.py writes one SQL for both; a backend supplies what differs: how to connect
(for the writer, for a reader), the schema and its upgrades, the placeholder (``?`` or
``%s``), the null-safe comparison and the bucket expression, which errors mean "the
connection is gone" (reconnect) or "try again" (a deadlock victim), and a lock that
serialises writers when several servers share one database.

Both keep the same tables. ``server`` names the server that wrote a row: in a SQLite
file it is always this server's, in PostgreSQL it tells several servers' rows apart.
"""

from __future__ import annotations

import os
import re
import sqlite3
from urllib.parse import quote, unquote, urlsplit, urlunsplit

URL_SCHEMES = ("postgresql://", "postgres://")

# Rows are (ts, user, server, kind, kernel_id, source, reason, details) for events and
# (ts, user, server, kernels, memory_bytes, cpu_percent) for samples.
_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    kernel_id TEXT,
    source TEXT,
    reason TEXT,
    details TEXT,
    count INTEGER NOT NULL DEFAULT 1,
    server TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE INDEX IF NOT EXISTS events_user_ts ON events(user, ts);
CREATE INDEX IF NOT EXISTS events_user_id ON events(user, id);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    user TEXT NOT NULL,
    kernels INTEGER NOT NULL,
    memory_bytes INTEGER,
    cpu_percent REAL,
    server TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS samples_ts ON samples(ts);
CREATE INDEX IF NOT EXISTS samples_user_ts ON samples(user, ts);
CREATE INDEX IF NOT EXISTS samples_user_id ON samples(user, id);
CREATE TABLE IF NOT EXISTS batches (uid TEXT PRIMARY KEY, ts REAL NOT NULL);
"""

# PostgreSQL: "user" is a reserved word (quoted); REAL is 4 bytes there (epoch seconds need
# DOUBLE PRECISION) and INTEGER is 4 bytes (memory needs BIGINT).
_POSTGRES_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        "user" TEXT NOT NULL,
        kind TEXT NOT NULL,
        kernel_id TEXT,
        source TEXT,
        reason TEXT,
        details TEXT,
        count INTEGER NOT NULL DEFAULT 1,
        server TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS events_ts ON events(ts)",
    'CREATE INDEX IF NOT EXISTS events_user_ts ON events("user", ts)',
    'CREATE INDEX IF NOT EXISTS events_user_id ON events("user", id)',
    """CREATE TABLE IF NOT EXISTS samples (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        "user" TEXT NOT NULL,
        kernels INTEGER NOT NULL,
        memory_bytes BIGINT,
        cpu_percent DOUBLE PRECISION,
        server TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS samples_ts ON samples(ts)",
    'CREATE INDEX IF NOT EXISTS samples_user_ts ON samples("user", ts)',
    'CREATE INDEX IF NOT EXISTS samples_user_id ON samples("user", id)',
    # the id of each batch, in its own transaction: a retry after a lost COMMIT writes nothing twice
    "CREATE TABLE IF NOT EXISTS batches (uid TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL)",
]

# pg_advisory_xact_lock key ("edahist"): taken first by every write, purge and schema
# change, so the writers of several servers take turns. Each holds it for one short
# transaction, and nobody holds a row lock while waiting for it: no deadlock.
_WRITER_LOCK = 0x65646168697374


def backend_for(path_or_url: str) -> SQLiteBackend | PostgresBackend:
    if path_or_url.startswith(URL_SCHEMES):
        return PostgresBackend(path_or_url)
    return SQLiteBackend(path_or_url)


class SQLiteBackend:
    """One server's file: WAL mode, so readers (read-only connections) never wait for the writer."""

    kind = "sqlite"
    same = "IS"  # a = b that holds for two NULLs too
    bucket = "CAST((ts - ?) / ? AS INTEGER)"  # ts >= since: truncation is the floor
    Error = sqlite3.Error

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.target = self.path  # for messages

    @staticmethod
    def sql(query: str) -> str:
        return query

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    def reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    def open(self) -> sqlite3.Connection:
        """The writer's connection, after creating or upgrading the file."""
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        # usernames and activity are personal data: owner-only file
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        conn = self.connect()
        conn.execute("PRAGMA journal_mode = WAL")  # readers never wait for the writer
        conn.execute("PRAGMA synchronous = NORMAL")
        # files from older versions: add the columns they lack (CREATE IF NOT EXISTS keeps old tables)
        for table, column, definition in (("events", "count", "INTEGER NOT NULL DEFAULT 1"),
                                          ("events", "server", "TEXT NOT NULL DEFAULT ''"),
                                          ("samples", "server", "TEXT NOT NULL DEFAULT ''")):
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if columns and column not in columns:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        conn.executescript(_SQLITE_SCHEMA)
        conn.commit()
        return conn

    @staticmethod
    def transaction(conn: sqlite3.Connection):
        return conn  # commits on success, rolls back on an exception

    def lock_writers(self, cursor) -> None:
        pass  # one server per file (its claim): nobody to take turns with

    def lost(self, conn) -> bool:
        return False  # a file does not go away: a failed write is the batch's (disk full, ...)

    def retryable(self, error: BaseException) -> bool:
        return False

    def scrub(self, text: str) -> str:
        return text


class PostgresBackend:
    """A database several servers share (psycopg 3). Writers take turns (``lock_writers``);
    readers open a read-only connection per read (reads are rare: admin API calls)."""

    kind = "postgresql"
    same = "IS NOT DISTINCT FROM"
    bucket = "FLOOR((ts - ?) / ?)::BIGINT"  # CAST to an integer would round
    CONNECT_TIMEOUT = 5  # seconds; below HistoryStore.start's wait, so start reports the failure

    def __init__(self, url: str) -> None:
        self.url = url
        self.target = redact(url)  # for messages: never the password
        self._password = _password_of(url)
        self.psycopg = None  # imported on first connection: SQLite users need no psycopg
        self.Error = _NeverRaised

    @staticmethod
    def sql(query: str) -> str:
        return query.replace("?", "%s")  # history.py's SQL has no other ? (nor any %)

    def _connect(self, autocommit: bool = True):
        if self.psycopg is None:
            try:
                import psycopg
            except ImportError as e:
                raise RuntimeError('EDAGateway.history_db is a PostgreSQL URL: install "psycopg[binary]"') from e
            self.psycopg, self.Error = psycopg, psycopg.Error
        given = self.psycopg.conninfo.conninfo_to_dict(self.url)
        defaults = {"connect_timeout": self.CONNECT_TIMEOUT, "application_name": "eda_gateway"}
        # the URL's own settings win
        return self.psycopg.connect(self.url, autocommit=autocommit,
                                    **{k: v for k, v in defaults.items() if k not in given})

    def connect(self):
        # autocommit: the writer's statements run in explicit transaction() blocks
        return self._connect()

    def reader(self):
        conn = self._connect(autocommit=False)
        conn.read_only = True  # BEGIN READ ONLY: a reader cannot write, as SQLite's mode=ro
        return conn

    def open(self):
        conn = self._connect()
        try:
            with conn.transaction(), conn.cursor() as cur:
                self.lock_writers(cur)  # two servers starting at once: CREATE IF NOT EXISTS races otherwise
                for statement in _POSTGRES_SCHEMA:
                    cur.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def transaction(conn):
        return conn.transaction()

    def lock_writers(self, cursor) -> None:
        # until the transaction ends: one server's write, purge or row cap at a time
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITER_LOCK,))

    def lost(self, conn) -> bool:
        return conn is None or conn.closed or conn.broken

    def retryable(self, error: BaseException) -> bool:
        errors = self.psycopg.errors
        return isinstance(error, (errors.DeadlockDetected, errors.SerializationFailure))

    def scrub(self, text: str) -> str:
        """An error message without the password (libpq's do not quote it; be sure)."""
        for secret in {self._password, quote(self._password, safe="")} - {""}:
            text = text.replace(secret, "***")
        return text


class _NeverRaised(Exception):
    """PostgresBackend.Error until psycopg is imported: nothing can have failed in it yet."""


def redact(url: str) -> str:
    """``postgresql://user:secret@host/db?password=x`` as ``postgresql://user:***@host/db?password=***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", parts.query, flags=re.IGNORECASE)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _password_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return unquote(parts.password)
    match = re.search(r"(?:^|&)password=([^&]*)", parts.query, flags=re.IGNORECASE)
    return unquote(match.group(1)) if match else ""
