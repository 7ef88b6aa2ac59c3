"""A retention loop: delete what is older than a retention, at start and then every
interval, a chunk per transaction, as the forwarder does for delivered outbox entries.

Why chunks: one DELETE of a year of rows would hold the writer (and so the intake) for
as long as it takes; chunks of ``chunk`` rows let intake transactions in between. Each
chunk is its own transaction, so a crash leaves every row either kept or deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from gateway.store import Store, StoreUnavailable
from gateway.store.engine import Tx
from gateway.support.logging import get_logger

log = get_logger("gateway.retention")

DAY_S = 86400.0
PurgeChunk = Callable[[Tx, float, int], int]  # (tx, before, limit) → rows deleted


class PurgeLoop:
    """Runs ``purge`` for rows older than ``retention_s``, every ``interval_s``."""

    def __init__(self, store: Store, name: str, purge: PurgeChunk, retention_s: float,
                 chunk: int, interval_s: float = DAY_S) -> None:
        self.store, self.name, self.purge = store, name, purge
        self.retention_s, self.chunk, self.interval_s = retention_s, chunk, interval_s
        self.deleted = 0  # rows this process deleted (counted in /metrics by the caller)
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"{self.name}-retention")

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                await self.purge_once()
            except StoreUnavailable as exc:
                log.warning("retention_store_unavailable", table=self.name, error=str(exc))
            except Exception as exc:  # keep the loop alive; try again at the next round
                log.error("retention_error", table=self.name, error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=self.interval_s)

    async def purge_once(self, now: float | None = None) -> int:
        """Delete everything past the retention, chunk by chunk; returns how many rows."""
        before = (time.time() if now is None else now) - self.retention_s
        deleted = chunks = 0
        while not self._stopped.is_set():
            n = await self.store.write(lambda tx: self.purge(tx, before, self.chunk))
            deleted += n
            chunks += 1
            if n < self.chunk:
                break
        self.deleted += deleted
        if deleted:
            log.info("retention_purged", table=self.name, deleted=deleted, chunks=chunks,
                     retention_days=round(self.retention_s / DAY_S, 3))
        return deleted
