"""What differs between the two engines, and nothing else.

Both engines are driven through a DB-API connection in autocommit mode, with explicit
``BEGIN``/``COMMIT`` issued by the group committer. SQL is written once with ``?``
placeholders and ``{id}``/``{blob}``/``{real}``/``{bigint}`` type slots.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from gateway.model.private_files import private_sqlite

INTAKE_LOCK_KEY = 0x4D53_0001  # "MS" 1: the schema lock (two replicas migrating at once)


def lock_id(name: str) -> int:
    """A signed 64-bit advisory-lock id for ``name``: two names sharing one id only wait
    for each other needlessly, they never miss a lock."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                          signed=True)


class Dialect(Protocol):
    name: str
    types: dict[str, str]
    begin: str
    skip_locked: str
    # Case codes and feed positions (gateway/store/cases.py): numbers from the writer's
    # own transaction (a counter row, fine with one writer), or, with several writers,
    # code numbers taken in blocks outside the transaction and feed positions derived
    # from the transaction id (``xact_id``) with the oldest running one as the horizon.
    numbers_in_transaction: bool
    xact_id: str | None  # SQL: this transaction's id, a bigint
    oldest_xact_id: str | None  # SQL: the oldest transaction id still running
    # Statements are sent ahead without waiting for each (a server over a socket): the
    # group committer then runs a batch whole first and waits once (gateway/store/engine.py).
    sends_ahead: bool
    # Joins a row per candidate by its key with ``CROSS JOIN LATERAL (… OFFSET 0)``: a plan
    # that stays an index look-up per candidate whatever the table statistics say
    # (gateway/store/dedup_index.py, ``by_bands_query``).
    lateral_join: bool

    def connect(self) -> Any: ...

    def translate(self, sql: str) -> str: ...

    def intake_lock_sql(self) -> str | None: ...

    def send_wide(self, conn: Any, sql: str, params: Sequence[Any], *,
                  prepare: bool = False) -> Any:
        """Send a statement of a batch's gathered work (gateway/store/coalesce.py: held
        rows' insert, gathered reads; ``?`` placeholders, hundreds of them, none inside
        a literal); its cursor, whose rows are read later if at all. ``prepare``: the
        statement's text is one of a few, worth the server's keeping its plan."""
        ...

    def key_locks_sql(self, count: int) -> str | None: ...

    def pipeline(self, conn: Any) -> contextlib.AbstractContextManager[Callable[[], None]]:
        """The group committer's batch, sent without waiting for each statement: yields
        ``sync``, which waits for what was sent (and raises its error)."""
        ...

    def describe(self) -> str: ...

    def is_disconnect(self, exc: BaseException) -> bool: ...

    def is_conflict(self, exc: BaseException) -> bool: ...


@dataclass
class SqliteDialect:
    """The embedded default: one file in WAL mode, fsync'd on every commit."""

    path: Path
    name: str = "sqlite"
    types: dict[str, str] = field(
        default_factory=lambda: {
            "id": "INTEGER PRIMARY KEY",
            "blob": "BLOB",
            "real": "REAL",
            "bigint": "INTEGER",
        }
    )
    begin: str = "BEGIN IMMEDIATE"
    skip_locked: str = ""
    numbers_in_transaction: bool = True  # one writer: a counter never waits for another
    sends_ahead: bool = False  # in-process: a statement has run when it returns
    lateral_join: bool = False  # no LATERAL; its planner looks the key up anyway
    xact_id: str | None = None
    oldest_xact_id: str | None = None

    def connect(self) -> sqlite3.Connection:
        private_sqlite(self.path)  # 0600 (and so its -wal and -shm) whatever the umask
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        _retry_while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute("PRAGMA synchronous=FULL")  # every commit is on disk before we answer
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def translate(self, sql: str) -> str:
        return sql

    def intake_lock_sql(self) -> str | None:
        return None  # BEGIN IMMEDIATE already makes the one writer exclusive

    def send_wide(self, conn: Any, sql: str, params: Sequence[Any], *,
                  prepare: bool = False) -> Any:
        return conn.execute(sql, params)

    def key_locks_sql(self, count: int) -> str | None:
        return None  # likewise

    @contextlib.contextmanager
    def pipeline(self, conn: Any) -> Iterator[Callable[[], None]]:
        yield lambda: None  # in-process: every statement has run when it returns

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def is_disconnect(self, exc: BaseException) -> bool:
        text = str(exc)
        return isinstance(exc, sqlite3.OperationalError) and (
            "disk I/O" in text or "unable to open" in text or "readonly" in text
        )

    def is_conflict(self, exc: BaseException) -> bool:
        return False  # one writer: nobody to deadlock with


def _retry_while_locked(step: Any, attempts: int = 100) -> None:
    """Switching to WAL needs the database to itself for a moment, and SQLite answers
    'locked' at once instead of waiting when another connection is starting too."""
    for attempt in range(attempts):
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


@dataclass
class PostgresDialect:
    """For several gateway replicas sharing one database."""

    url: str
    connect_timeout_s: float = 10.0
    name: str = "postgresql"
    types: dict[str, str] = field(
        default_factory=lambda: {
            "id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "blob": "BYTEA",
            "real": "DOUBLE PRECISION",
            "bigint": "BIGINT",
        }
    )
    begin: str = "BEGIN"
    skip_locked: str = " FOR UPDATE SKIP LOCKED"
    numbers_in_transaction: bool = False  # a counter row would serialise the replicas
    sends_ahead: bool = True  # psycopg's pipeline mode
    lateral_join: bool = True
    xact_id: str | None = "pg_current_xact_id()::text::bigint"
    oldest_xact_id: str | None = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
    _cache: dict[str, str] = field(default_factory=dict)

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s))
        )

    def translate(self, sql: str) -> str:
        found = self._cache.get(sql)
        if found is None:
            found = self._cache[sql] = sql.replace("?", "%s")
        return found

    def intake_lock_sql(self) -> str | None:
        return f"SELECT pg_advisory_xact_lock({INTAKE_LOCK_KEY})"

    def send_wide(self, conn: Any, sql: str, params: Sequence[Any], *,
                  prepare: bool = False) -> Any:
        """Through a raw cursor, the placeholders numbered (``$1``, ``$2`` …) once per
        statement text: psycopg parses a ``%s`` query of more than 50 parameters again
        at every call, in Python, per placeholder (its cache skips such statements),
        which was a seventh of the writer thread's CPU (bench/README.md). Prepared
        (``prepare``) as psycopg prepares any statement: once its text has come five
        times; else never (a held insert's text changes with its row count)."""
        import psycopg

        return psycopg.RawCursor(conn).execute(numbered(sql), params,
                                               prepare=None if prepare else False)

    def key_locks_sql(self, count: int) -> str | None:
        # One row, the calls evaluated left to right: the caller sorts the ids, so two
        # transactions take shared ids in one order.
        return "SELECT " + ", ".join("pg_advisory_xact_lock(?)" for _ in range(count))

    @contextlib.contextmanager
    def pipeline(self, conn: Any) -> Iterator[Callable[[], None]]:
        """psycopg's pipeline mode: a statement whose result nobody reads is sent with the
        next one that is read, so a batch waits for the server once per read, per unit
        (``sync``, to know its statements' errors) and at the commit, not per statement."""
        with conn.pipeline() as pipe:
            yield pipe.sync

    def describe(self) -> str:
        host = self.url.rpartition("@")[2]
        return f"postgresql://…@{host}"

    def is_disconnect(self, exc: BaseException) -> bool:
        import psycopg

        if isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure):
            return False  # the server is there; the batch is run again (is_conflict)
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))

    def is_conflict(self, exc: BaseException) -> bool:
        """Two replicas' transactions waited for each other (deadlock) or collided: the
        server rolled one back; running the whole batch again is safe."""
        import psycopg

        return isinstance(exc, psycopg.errors.DeadlockDetected
                          | psycopg.errors.SerializationFailure)


_PLACEHOLDER = re.compile(r"\?")


@lru_cache(maxsize=4096)
def numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders as PostgreSQL's ``$1``, ``$2`` …, in order.
    Only for statements whose every ``?`` is a placeholder (as every statement of the
    store: ``translate`` assumes it too). Cached: a store sends a few kinds of insert
    and of read at a few dozen row and read counts (gateway/store/coalesce.py)."""
    counter = iter(range(1, sql.count("?") + 1))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def dialect_for(url: str, connect_timeout_s: float = 10.0) -> Dialect:
    if url.startswith("sqlite:///"):
        return SqliteDialect(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDialect(url, connect_timeout_s)
    raise ValueError(f"unsupported store url {url!r}")
