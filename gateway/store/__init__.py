"""One store interface over two engines (SQLite, PostgreSQL).

Use ``Store.from_url``; run work with ``write`` (group-committed) or ``read``. The query
modules (``journal``, ``cases``, ``outbox``, ``quarantine``, ``checkpoints``) are plain
functions of a ``Tx`` and run unchanged on both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gateway.store.dialect import dialect_for
from gateway.store.engine import Database, ReadAhead, StoreUnavailable, Tx
from gateway.store.group_write_lock import GroupWriteLock
from gateway.store.migrations import migrate

__all__ = ["ReadAhead", "Store", "StoreUnavailable", "Tx"]

T = TypeVar("T")


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def from_url(cls, url: str, batch_max: int = 512, connect_timeout_s: float = 10.0,
                 group_lock: GroupWriteLock | None = None) -> Store:
        return cls(Database(dialect_for(url, connect_timeout_s), batch_max, group_lock))

    @property
    def engine(self) -> str:
        return self.db.dialect.name

    async def start(self) -> None:
        """Start the threads and bring the schema up to date."""
        await self.db.start()
        await self.db.write(migrate)

    async def close(self) -> None:
        await self.db.close()

    async def write(self, fn: Callable[[Tx], T], ahead: ReadAhead | None = None) -> T:
        return await self.db.write(fn, ahead)

    async def read(self, fn: Callable[[Tx], T]) -> T:
        return await self.db.read(fn)

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers."""
        await self.read(lambda tx: tx.fetchone("SELECT 1"))
