"""The poller of pulled sources: checkpoints, backoff and status, leases across replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.intake.health import DISABLED, DOWN, STANDBY, UP, SourceStatus
from gateway.intake.pipeline import Intake, IntakeResult, SourceBinding
from gateway.intake.poller import Fetched, PolledAdapter, Poller
from gateway.intake.sources import AdapterEnv
from gateway.model.attachments import AttachmentStore
from gateway.model.errors import SourceMisconfigured, SourceUnavailable
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from gateway.store import Store, checkpoints
from gateway.support.config import SourceConfig


def _normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    return ComplaintDraft(
        channel="opinion", source=raw.source, source_ref=raw.source_ref,
        received_at=raw.received_at, reported_at=raw.received_at,
        body=raw.payload.decode(),
    )


class ListSource(PolledAdapter):
    """A pulled source whose 'server' is a Python list; it can be told to fail."""

    poll_interval_s = 0.05
    lease_s = 1.0

    def __init__(self, name: str, items: list[str]) -> None:
        unused = Path("/nonexistent")  # the list source keeps no files
        super().__init__(SourceConfig(name=name, adapter="test"), {},
                         AdapterEnv(AttachmentStore(unused), unused, ZoneInfo("Asia/Shanghai")))
        self.items = items
        self.fail: Exception | None = None
        self.fetches = 0
        self.acked: list[str] = []

    async def fetch(self, checkpoint: Any) -> AsyncIterator[Fetched]:
        self.fetches += 1
        if self.fail is not None:
            raise self.fail
        start = checkpoint or 0
        for index in range(start, len(self.items)):
            raw = RawRecord(
                channel="opinion", source=self.name, source_ref=f"item-{index}",
                payload=self.items[index].encode(), content_type="text/plain",
                received_at=datetime.now(UTC),
            )
            yield Fetched(raw, index + 1)

    async def after_journaled(self, fetched: Fetched, result: IntakeResult) -> None:
        self.acked.append(fetched.record.source_ref)


def _intake(store: Store, name: str) -> Intake:
    binding = SourceBinding(_normalize, NormalizerContext(name))
    return Intake(store, region="CY", timezone=ZoneInfo("Asia/Shanghai"), sinks=["file"],
                  bindings={name: binding})


async def _case_count(store: Store) -> int:
    row = await store.read(lambda tx: tx.fetchone("SELECT COUNT(*) FROM cases"))
    return int(row[0])


async def test_poll_once_journals_then_checkpoints(store: Store) -> None:
    source = ListSource("forum", ["噪音", "占道经营"])
    poller = Poller(store, _intake(store, "forum"), SourceStatus())
    assert await poller.poll_once(source) == 2
    assert await store.read(lambda tx: checkpoints.get(tx, "forum")) == 2
    source.items.append("井盖缺失")
    assert await poller.poll_once(source) == 1  # only what is new since the checkpoint
    assert await _case_count(store) == 3
    assert source.acked == ["item-0", "item-1", "item-2"]


async def test_lost_checkpoint_replays_without_duplicates(store: Store) -> None:
    source = ListSource("forum", ["噪音", "占道经营"])
    poller = Poller(store, _intake(store, "forum"), SourceStatus())
    await poller.poll_once(source)
    await store.write(lambda tx: checkpoints.put(tx, "forum", 0))  # as if a crash lost it
    await poller.poll_once(source)
    assert await _case_count(store) == 2


async def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_unavailable_source_backs_off_then_recovers(store: Store) -> None:
    status = SourceStatus()
    status.register("forum", "pull")
    source = ListSource("forum", ["噪音"])
    source.fail = SourceUnavailable("connection refused")
    poller = Poller(store, _intake(store, "forum"), status)
    poller.start(source)
    try:
        await _wait_for(lambda: status.sources["forum"].consecutive_failures >= 2)
        assert status.sources["forum"].state == DOWN
        assert status.sources["forum"].reason == "connection refused"
        source.fail = None
        await _wait_for(lambda: status.sources["forum"].state == UP)
        assert status.sources["forum"].consecutive_failures == 0
    finally:
        await poller.stop()
    assert await _case_count(store) == 1


async def test_misconfigured_source_is_disabled(store: Store) -> None:
    status = SourceStatus()
    status.register("forum", "pull", critical=True)
    source = ListSource("forum", [])
    source.fail = SourceMisconfigured("HTTP 404 on the configured URL")
    poller = Poller(store, _intake(store, "forum"), status)
    poller.start(source)
    try:
        await _wait_for(lambda: status.sources["forum"].state == DISABLED)
        fetches = source.fetches
        await asyncio.sleep(0.3)
        assert source.fetches == fetches  # not retried
        assert status.critical_down() == ["forum"]
    finally:
        await poller.stop()


async def test_one_replica_polls_and_another_takes_over(store_url: str) -> None:
    stores = [Store.from_url(store_url) for _ in range(2)]
    for s in stores:
        await s.start()
    statuses = [SourceStatus(), SourceStatus()]
    sources = [ListSource("forum", ["噪音"]), ListSource("forum", ["噪音"])]
    pollers = [Poller(s, _intake(s, "forum"), st) for s, st in zip(stores, statuses, strict=True)]
    for st in statuses:
        st.register("forum", "pull")
    try:
        pollers[0].start(sources[0])
        await _wait_for(lambda: statuses[0].sources["forum"].state == UP)
        pollers[1].start(sources[1])
        await _wait_for(lambda: statuses[1].sources["forum"].state == STANDBY)
        assert sources[1].fetches == 0
        await pollers[0].stop()  # releases its lease (a dead replica's lease would expire)
        await _wait_for(lambda: statuses[1].sources["forum"].state == UP)
        assert sources[1].fetches >= 1
    finally:
        await pollers[1].stop()
        for s in stores:
            await s.close()
