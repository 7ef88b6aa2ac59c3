"""Drives pulled sources (IMAP, feeds, pages): schedule, backoff, checkpoints and leases.

Adapters only fetch and convert their errors (``SourceUnavailable``: back off and try
again; ``SourceMisconfigured``: stop and report); they never retry on their own. Each
item is submitted to the intake (journaled) before its checkpoint is committed, so a
crash replays at most the last items and the replay check absorbs them. With several
replicas on one store, a lease makes one replica at a time poll each source; another
takes over when the lease expires (``lease_s``, default 30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog

from gateway.intake.health import DISABLED, STANDBY, SourceStatus
from gateway.intake.sources import Adapter
from gateway.model.errors import SourceMisconfigured, SourceUnavailable
from gateway.model.schema import ComplaintDraft, RawRecord
from gateway.store import Store, checkpoints
from gateway.support.connection_check import ConnectionCheck
from gateway.support.logging import get_logger
from gateway.support.plugin import OptionsT

if TYPE_CHECKING:
    from gateway.intake.pipeline import Intake, IntakeResult

log = get_logger("gateway.poller")


@dataclass(frozen=True)
class Fetched:
    """One item a pulled adapter found, and the checkpoint that covers it once durable.

    ``record`` may be None to move the checkpoint alone (e.g. a feed answered 304, or
    every new entry was filtered out). ``draft``: the record already normalized by the
    adapter (to judge its relevance); the intake takes it instead of normalizing again."""

    record: RawRecord | None
    checkpoint: Any = None
    draft: ComplaintDraft | None = None


class PolledAdapter(Adapter[OptionsT]):
    """Base of pulled adapters: implement ``fetch``; optionally ``after_journaled``."""

    poll_interval_s: float = 60.0
    max_backoff_s: float = 600.0
    lease_s: float = 30.0

    def fetch(self, checkpoint: Any) -> AsyncIterator[Fetched]:
        """Yield what is new since ``checkpoint``. Raise ``SourceUnavailable`` or
        ``SourceMisconfigured`` for trouble."""
        raise NotImplementedError

    async def after_journaled(self, fetched: Fetched, result: IntakeResult) -> None:
        """The item is durable: act on the source now (e.g. flag a mail as seen)."""

    async def check_connection(self) -> ConnectionCheck:
        """A pulled source reaches out: kinds that can tell implement the check."""
        return ConnectionCheck.not_checked()

    def wake(self) -> None:
        """Ask the poller to poll now (e.g. an IMAP IDLE push)."""
        event = getattr(self, "_wake_event", None)
        if event is not None:
            event.set()


def backoff_delay(failures: int, base_s: float, max_s: float) -> float:
    return float(min(base_s * 2 ** min(failures - 1, 20), max_s) * random.uniform(0.8, 1.2))


class Poller:
    def __init__(self, store: Store, intake: Intake, status: SourceStatus) -> None:
        self.store = store
        self.intake = intake
        self.status = status
        self.owner = uuid.uuid4().hex
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    def start(self, adapter: PolledAdapter[Any]) -> None:
        adapter._wake_event = asyncio.Event()  # type: ignore[attr-defined]
        self._tasks[adapter.name] = asyncio.create_task(self._run(adapter), name=adapter.name)

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for name in self._tasks:
            await self.store.write(
                partial(checkpoints.release_lease, name=f"source:{name}", owner=self.owner)
            )

    async def _lease(self, adapter: PolledAdapter[Any]) -> bool:
        name, owner, ttl = f"source:{adapter.name}", self.owner, adapter.lease_s
        return await self.store.write(lambda tx: checkpoints.acquire_lease(tx, name, owner, ttl))

    async def _run(self, adapter: PolledAdapter[Any]) -> None:
        failures = 0
        while not self._stopping.is_set():
            if not await self._lease(adapter):
                self.status.set(adapter.name, STANDBY, "another replica polls this source")
                await self._sleep(adapter, adapter.lease_s / 3)
                continue
            started = time.monotonic()
            try:
                await self._poll_holding_lease(adapter)
            except SourceMisconfigured as exc:
                log.error("source_misconfigured", source=adapter.name, error=str(exc))
                self.status.set(adapter.name, DISABLED, f"misconfigured: {exc}")
                return
            except Exception as exc:  # SourceUnavailable or anything unexpected: back off
                failures += 1
                reason = str(exc) if isinstance(exc, SourceUnavailable) else repr(exc)
                if failures == 1:
                    log.warning("source_unavailable", source=adapter.name, error=reason)
                self.status.failure(adapter.name, reason)
                delay = backoff_delay(failures, min(adapter.poll_interval_s, 5.0),
                                      adapter.max_backoff_s)
                await self._sleep(adapter, delay)
                continue
            if failures:
                log.info("source_recovered", source=adapter.name, after_failures=failures)
            failures = 0
            self.status.success(adapter.name, time.monotonic() - started)
            await self._sleep(adapter, adapter.poll_interval_s)

    async def _poll_holding_lease(self, adapter: PolledAdapter[Any]) -> int:
        """Run one pass while renewing the lease every third of its time; a replica that
        loses its lease (e.g. stalled past it) stops the pass: another one polls now."""
        poll = asyncio.create_task(self._traced_poll(adapter))
        try:
            while True:
                done, _ = await asyncio.wait({poll}, timeout=adapter.lease_s / 3)
                if done:
                    return poll.result()
                if not await self._lease(adapter):
                    log.warning("lease_lost", source=adapter.name)
                    return 0
        finally:
            if not poll.done():
                poll.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poll

    async def _traced_poll(self, adapter: PolledAdapter[Any]) -> int:
        """A pass with a ``poll_id`` in every log line it causes (the pulled counterpart of
        an HTTP request id)."""
        with structlog.contextvars.bound_contextvars(poll_id=uuid.uuid4().hex,
                                                     source=adapter.name):
            return await self.poll_once(adapter)

    async def poll_once(self, adapter: PolledAdapter[Any]) -> int:
        """One pass: journal every new item, then commit its checkpoint. Returns the count
        of records submitted."""
        name = adapter.name
        checkpoint = await self.store.read(lambda tx: checkpoints.get(tx, name))
        count = 0
        async for fetched in adapter.fetch(checkpoint):
            if fetched.record is not None:
                result = await self.intake.submit(fetched.record, quarantine_rejects=True,
                                                  draft=fetched.draft)
                await adapter.after_journaled(fetched, result)
                count += 1
            if fetched.checkpoint is not None:
                await self.store.write(
                    partial(checkpoints.put, source=name, value=fetched.checkpoint)
                )
        return count

    async def _sleep(self, adapter: PolledAdapter[Any], seconds: float) -> None:
        event: asyncio.Event = adapter._wake_event  # type: ignore[attr-defined]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=seconds)
        event.clear()
