"""The store's part of ``minsheng check-config --connect``: can the database be opened?

It opens one connection of its own and asks ``SELECT 1`` and the schema version; it
starts no threads and applies no migration (``minsheng run`` does that). A SQLite file
that does not exist yet is not created: its folder must be writable instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.store.dialect import SqliteDialect, dialect_for
from gateway.support.connection_check import ConnectionCheck, writable_folder


def _schema_version(conn: Any) -> int | None:
    """The newest applied migration, or None on a database the gateway never started on."""
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    except Exception:
        return None
    return int(row[0]) if row and row[0] is not None else None


def _check(url: str, connect_timeout_s: float) -> ConnectionCheck:
    dialect = dialect_for(url, connect_timeout_s)
    if isinstance(dialect, SqliteDialect) and not dialect.path.exists():
        found = writable_folder(dialect.path)
        if found.state != "ok":
            return found
        return ConnectionCheck.ok("数据库文件将在首次启动时创建",
                                  f"{dialect.path} will be created at the first start")
    conn = dialect.connect()
    try:
        conn.execute("SELECT 1").fetchone()
        version = _schema_version(conn)
    finally:
        conn.close()
    schema = f"schema version {version}" if version is not None else "no schema yet"
    return ConnectionCheck.ok("已连接", f"connected to {dialect.describe()}, {schema}")


async def check_store(url: str, connect_timeout_s: float) -> ConnectionCheck:
    """Open the configured store once (blocking drivers: on a worker thread)."""
    return await asyncio.to_thread(_check, url, connect_timeout_s)
