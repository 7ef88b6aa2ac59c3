"""The daily purge job (gateway/store/retention.py): one replica at a time, chunked, a
transaction per chunk, counted in /metrics (``minsheng_retention_purged``).

Each day at ``retention.run_at`` (local time) every replica wakes; the first to take the
day's lease in the store runs the purge, the others skip it, the way the weekly report's
mail is sent once (gateway/reports/schedule.py). ``minsheng retention run`` runs the same
purge once from the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta

from gateway.model.attachments import AttachmentStore
from gateway.store import Store, attachment_files, checkpoints, retention
from gateway.store.retention import PurgeKind
from gateway.support.config import GatewayConfig
from gateway.support.logging import get_logger

log = get_logger("gateway.retention")
LEASE = "retention-purge"
LEASE_S = 20 * 3600.0  # held for the day's run; expired before the next day's


def next_run(now: datetime, config: GatewayConfig) -> datetime:
    """The next ``retention.run_at`` after ``now``, in the centre's time zone."""
    local = now.astimezone(config.tz)
    run = datetime.combine(local.date(), config.retention.run_at, tzinfo=config.tz)
    return run if run > local else run + timedelta(days=1)


async def purge(store: Store, config: GatewayConfig, now: float | None = None) -> Counter[str]:
    """Run every kind's purge until nothing is due, then delete the attachment files no
    case lists any more; returns how many of each kind went (``files``: files deleted)."""
    settings = config.retention
    now = time.time() if now is None else now
    delivered_before, refused_before = now - settings.delivered_s, now - settings.refused_s
    done: Counter[str] = Counter()
    while True:
        cases_n, _ = await store.write(lambda tx: retention.purge_delivered_chunk(
            tx, delivered_before, settings.wait_for_accepted, settings.chunk))
        done[PurgeKind.DELIVERED_CASE] += cases_n
        if cases_n < settings.chunk:
            break
    while True:
        raw_n = await store.write(
            lambda tx: retention.purge_refused_chunk(tx, refused_before, settings.chunk))
        done[PurgeKind.REFUSED_RAW] += raw_n
        if raw_n < settings.chunk:
            break
    calls_before = now - settings.calls_s
    while True:
        calls_n = await store.write(lambda tx: retention.purge_caseless_calls_chunk(
            tx, calls_before, settings.chunk))
        done[PurgeKind.CASELESS_CALL] += calls_n
        if calls_n < settings.chunk:
            break
    done["files"] += await attachment_files.delete_queued(
        store, AttachmentStore(config.attachments_dir))
    log.info("retention_purged", **{str(k): v for k, v in sorted(done.items())})
    return done


class RetentionJob:
    """The daily task of a running gateway; ``purged`` and ``last_run`` feed /metrics."""

    def __init__(self, config: GatewayConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.purged: Counter[str] = Counter()
        self.last_run: float | None = None
        self._replica = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            now = datetime.now(self.config.tz)
            await asyncio.sleep((next_run(now, self.config) - now).total_seconds())
            await self.run_if_mine(datetime.now(self.config.tz).date().isoformat())

    async def run_if_mine(self, day: str) -> bool:
        """Run the day's purge unless another replica took it; a failure is logged and
        the purge runs again the next day (``minsheng retention run`` runs it now)."""
        owner = f"{day}:{self._replica}"
        try:
            if not await self.store.write(
                    lambda tx: checkpoints.acquire_lease(tx, LEASE, owner, LEASE_S)):
                log.info("retention_run_elsewhere", day=day)
                return False
            self.purged.update(await purge(self.store, self.config))
        except Exception as exc:  # the gateway keeps running; operations read the log
            log.error("retention_failed", day=day, error=repr(exc))
            return False
        self.last_run = time.time()
        return True
