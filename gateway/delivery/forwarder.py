"""Delivers the outbox to the sinks, at least once, oldest first, with a stored schedule.

One loop per sink: claim a batch (leased, so replicas share the work), deliver it, and
record per entry: delivered, retry at a later time (exponential backoff kept in the
store, so it survives restarts), or dead-letter (a permanent refusal, or past the
attempts/age limit, with the last error). Entries that fail may be overtaken by later
ones: one stuck entry never blocks the line.

What a sink receives is shaped in one place (``forward_once``): a confidential case's
reporter masked unless the sink says ``confidential: full``, then its attachments per
the sink's ``attachments`` mode.

Beside the sink loops, one retention loop deletes the entries delivered longer ago than
``store.outbox_retention_days``: at start, then every ``RETENTION_INTERVAL_S``, in
statements of at most ``outbox.PURGE_CHUNK`` entries, each its own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from gateway.delivery.attachments import AttachmentShaper
from gateway.delivery.sinks.base import Outcome, Sink
from gateway.model.errors import PermanentSinkError
from gateway.store import Store, StoreUnavailable, Tx, outbox
from gateway.store.outbox import Delivery
from gateway.support.confidential import mask_json
from gateway.support.config import RetryPolicy, SinkConfig
from gateway.support.logging import get_logger

log = get_logger("gateway.forwarder")
RETENTION_INTERVAL_S = 3600.0  # how often delivered entries past the retention are deleted


def confidential_view(config: SinkConfig, batch: Sequence[Delivery]) -> list[Delivery]:
    """The batch as the sink ``config`` may see it: confidential cases masked unless the
    sink receives them in ``full`` (the stored entries are not changed)."""
    if config.confidential == "full":
        return list(batch)
    shaped = []
    for delivery in batch:
        body = mask_json(delivery.body)
        shaped.append(delivery if body is delivery.body
                      else dataclasses.replace(delivery, body=body))
    return shaped


def next_delay(policy: RetryPolicy, attempts: int) -> float:
    """Seconds to wait before attempt ``attempts + 1``: exponential, capped, jittered."""
    base = policy.base_delay_s * (2 ** min(attempts, 30))
    return float(min(base * random.uniform(0.8, 1.2), policy.max_delay_s))


def settle(tx: Tx, policy: RetryPolicy, batch: Sequence[Delivery], outcomes: list[Outcome]) -> None:
    """Record what happened to each delivery of a batch."""
    now = time.time()
    delivered = [d.outbox_id for d, o in zip(batch, outcomes, strict=True) if o is None]
    outbox.mark_delivered(tx, delivered)
    for delivery, outcome in zip(batch, outcomes, strict=True):
        if outcome is None:
            continue
        attempts = delivery.attempts + 1
        too_old = now - delivery.created_at >= policy.max_age_s
        if isinstance(outcome, PermanentSinkError) or attempts >= policy.max_attempts or too_old:
            outbox.dead_letter(tx, delivery.outbox_id, str(outcome))
        else:
            when = now + next_delay(policy, delivery.attempts)
            outbox.reschedule(tx, delivery.outbox_id, when, str(outcome))


class Forwarder:
    def __init__(
        self, store: Store, sinks: list[tuple[SinkConfig, Sink[Any]]],
        retention_s: float | None = None, attachments: AttachmentShaper | None = None,
    ) -> None:
        """``retention_s``: delete entries delivered longer ago than this (None: keep).
        ``attachments``: shapes each batch for its sink's ``attachments`` mode (None: as
        stored)."""
        self.attachments = attachments
        self.store = store
        self.sinks = sinks
        self.retention_s = retention_s
        self.retention_interval_s = RETENTION_INTERVAL_S
        self.owner = uuid.uuid4().hex
        self._wake = {config.name: asyncio.Event() for config, _ in sinks}
        self._stopping = False
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.delivered: dict[str, int] = {config.name: 0 for config, _ in sinks}
        self.failed: dict[str, int] = {config.name: 0 for config, _ in sinks}

    def notify(self) -> None:
        """New entries were committed: wake every sink loop now rather than at its poll."""
        for event in self._wake.values():
            event.set()

    async def start(self) -> None:
        for config, sink in self.sinks:
            await sink.start()
            self._tasks.append(asyncio.create_task(self._run(config, sink), name=config.name))
        if self.retention_s is not None:
            self._tasks.append(asyncio.create_task(self._retain(), name="outbox-retention"))

    async def stop(self) -> None:
        """Let every loop finish the batch it holds, then close the sinks."""
        self._stopping = True
        self._stopped.set()
        self.notify()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, sink in self.sinks:
            await sink.close()
        await self.store.write(lambda tx: outbox.release_leases(tx, self.owner))

    async def _run(self, config: SinkConfig, sink: Sink[Any]) -> None:
        wake = self._wake[config.name]
        while not self._stopping:
            wake.clear()
            try:
                handled = await self.forward_once(config, sink)
            except StoreUnavailable as exc:
                log.warning("forwarder_store_unavailable", sink=config.name, error=str(exc))
                handled = 0
            except Exception as exc:  # keep the loop alive whatever a sink does
                log.error("forwarder_error", sink=config.name, error=repr(exc))
                handled = 0
            if handled == 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=config.poll_interval_s)

    async def _retain(self) -> None:
        while not self._stopping:
            try:
                await self.purge_delivered()
            except StoreUnavailable as exc:
                log.warning("outbox_retention_store_unavailable", error=str(exc))
            except Exception as exc:  # keep the loop alive; try again at the next round
                log.error("outbox_retention_error", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=self.retention_interval_s)

    async def purge_delivered(self) -> dict[str, int]:
        """Delete the entries delivered longer ago than the retention, a chunk per
        transaction, until none is left; return how many per sink (logged if any)."""
        if self.retention_s is None:
            return {}
        before = time.time() - self.retention_s
        limit = outbox.PURGE_CHUNK
        deleted: Counter[str] = Counter()
        chunks = 0
        while not self._stopping:
            chunk = await self.store.write(lambda tx: outbox.purge_delivered(tx, before, limit))
            deleted.update(chunk)
            chunks += 1
            if sum(chunk.values()) < limit:
                break
        if deleted:
            log.info("outbox_purged", deleted=sum(deleted.values()),
                     sinks=dict(sorted(deleted.items())), chunks=chunks,
                     retention_days=round(self.retention_s / 86400.0, 3))
        return dict(deleted)

    async def forward_once(self, config: SinkConfig, sink: Sink[Any]) -> int:
        """Claim, deliver and settle one batch; returns how many entries it handled."""
        batch = await self.store.write(
            lambda tx: outbox.claim(tx, config.name, config.batch_size, config.lease_s, self.owner)
        )
        if not batch:
            return 0
        shaped = list(batch) if sink.answers_the_reporter else confidential_view(config, batch)
        if self.attachments is not None:
            shaped = await self.attachments.shape(config, shaped)
        outcomes = await sink.deliver(shaped)
        await self.store.write(lambda tx: settle(tx, config.retry, batch, outcomes))
        ok = sum(1 for o in outcomes if o is None)
        self.delivered[config.name] += ok
        self.failed[config.name] += len(batch) - ok
        if ok < len(batch):
            errors = {str(o) for o in outcomes if o is not None}
            log.warning("delivery_failed", sink=config.name, failed=len(batch) - ok,
                        errors=sorted(errors)[:3])
        return len(batch)
