"""``GET /metrics`` and ``GET /v1/status`` follow real events, on both engines: a pulled
source that goes down and recovers, an ``http`` sink (tests/receiver.py) that fails and
dead-letters then is replayed, a rejected submission, the intake latency."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.intake.pipeline import SourceBinding
from gateway.model.errors import SourceUnavailable
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from gateway.server.app import Gateway
from gateway.store import cases, dedup_index, outbox
from tests.conftest import base_url, gateway_config
from tests.receiver import Receiver
from tests.test_poller import ListSource

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SINK = "platform"
NO_CACHE = {"cache_s": 0}  # /v1/status reads the store on every request
GOOD = {"name": "黄女士", "phone": "13800138000", "subject": "共享单车乱停放",
        "content": "小区门口共享单车堆放严重，影响通行。", "address": "城阳区正阳路"}


def _normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    return ComplaintDraft(channel="opinion", source=raw.source, source_ref=raw.source_ref,
                          received_at=raw.received_at, reported_at=raw.received_at,
                          body=raw.payload.decode())


class OpinionSource(ListSource):
    """A pulled test source of the online-opinion channel."""

    channel = "opinion"


def failing_sink(url: str) -> dict[str, Any]:
    return {"name": SINK, "kind": "http", "url": url, "timeout_s": 1.0, "poll_interval_s": 0.1,
            "retry": {"max_attempts": 2, "base_delay_s": 0.05, "max_delay_s": 0.1,
                      "immediate_attempts": 1}}


def add_pulled_source(gw: Gateway, source: ListSource) -> None:
    """Register a pulled source on a running gateway, as app.start does for configured ones."""
    gw.intake.bindings[source.name] = SourceBinding(_normalize, NormalizerContext(source.name))
    gw.adapters[source.name] = source
    gw.status.register(source.name, "pull")
    gw.poller.start(source)


@asynccontextmanager
async def running(gw: Gateway) -> AsyncIterator[Gateway]:
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


async def scrape(gw: Gateway, headers: dict[str, str] | None = None) -> Samples:
    async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
        response = await client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def status(gw: Gateway) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
        response = await client.get("/v1/status")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_metrics_and_status_follow_outage_recovery_and_dead_letters(
    tmp_path: Path, store_url: str
) -> None:
    receiver = Receiver()
    await receiver.start()
    receiver.fail_always(500)
    config = gateway_config(tmp_path, store_url, sinks=[failing_sink(receiver.url)],
                            ops=NO_CACHE)
    try:
        async with running(Gateway(config)) as gw:
            forum = OpinionSource("forum", ["井盖缺失", "路灯不亮"])
            forum.fail = SourceUnavailable("connection refused by forum.example")
            add_pulled_source(gw, forum)
            await _source_down_is_visible(gw)
            forum.fail = None
            forum.wake()
            await _source_recovery_is_visible(gw)
            await _rejection_and_latency_are_counted(gw)
            await _dead_letters_are_visible(gw, receiver)
            receiver.recover()
            await gw.store.write(lambda tx: outbox.replay_dead(tx, None))
            gw.forwarder.notify()
            await _replayed_dead_letters_are_delivered(gw)
    finally:
        await receiver.close()


async def _source_down_is_visible(gw: Gateway) -> None:
    async def down() -> bool:
        return (value(await scrape(gw), "minsheng_source_consecutive_failures", source="forum")
                or 0) >= 2

    await wait_for(down)
    samples = await scrape(gw)
    assert value(samples, "minsheng_source_up", source="forum", channel="opinion") == 0
    assert value(samples, "minsheng_source_state", source="forum", channel="opinion",
                 state="down") == 1
    assert value(samples, "minsheng_source_state", source="forum", channel="opinion",
                 state="up") == 0
    assert (value(samples, "minsheng_source_last_error_timestamp_seconds", source="forum")
            or 0) > time.time() - 60
    assert value(samples, "minsheng_source_last_success_timestamp_seconds", source="forum") is None
    assert value(samples, "minsheng_source_up", source="web", channel="web") == 1
    doc = await status(gw)
    forum = next(s for s in doc["sources"] if s["name"] == "forum")
    assert (forum["state"], forum["reason"]) == ("down", "connection refused by forum.example")
    assert forum["channel"] == "opinion" and forum["kind"] == "pull"
    assert doc["summary"]["state"] == "warning"
    assert {"level": "warning", "zh": "来源 forum 中断", "en": "source forum down"} in \
        doc["summary"]["problems"]
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200  # reported, not failed: forum is not critical
    assert ready.json()["sources"]["forum"]["state"] == "down"


async def _source_recovery_is_visible(gw: Gateway) -> None:
    async def up() -> bool:
        return value(await scrape(gw), "minsheng_source_up", source="forum",
                     channel="opinion") == 1

    await wait_for(up)
    samples = await scrape(gw)
    assert value(samples, "minsheng_source_consecutive_failures", source="forum") == 0
    assert (value(samples, "minsheng_source_last_success_timestamp_seconds", source="forum")
            or 0) > time.time() - 60
    assert value(samples, "minsheng_source_poll_duration_seconds", source="forum") is not None
    assert value(samples, "minsheng_intake_items_total", source="forum", channel="opinion",
                 outcome="new") == 2
    assert value(samples, "minsheng_intake_received_total", source="forum",
                 channel="opinion") == 2
    doc = await status(gw)
    forum = next(s for s in doc["sources"] if s["name"] == "forum")
    assert forum["state"] == "up" and forum["counts"] == {"new": 2}
    assert doc["volumes"]["last_24h"]["opinion"] == {"cases": 2, "received": 2, "rejected": 0}


async def _rejection_and_latency_are_counted(gw: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
        assert (await client.post("/intake/web", json=GOOD)).status_code == 202
        bad = await client.post("/intake/web", json={"name": "张", "phone": "1380", "content": ""})
        assert bad.status_code == 422
        assert (await client.post("/intake/nowhere", json=GOOD)).status_code == 404
    samples = await scrape(gw)
    assert value(samples, "minsheng_intake_items_total", source="web", channel="web",
                 outcome="rejected") == 1
    assert value(samples, "minsheng_intake_accepted_total", source="web", channel="web") == 1
    assert value(samples, "minsheng_intake_received_total", source="web", channel="web") == 2
    for reason in ("invalid_phone", "required"):
        assert value(samples, "minsheng_rejection_reasons_total", source="web", channel="web",
                     reason=reason) == 1
    assert value(samples, "minsheng_intake_latency_seconds_count", source="web") == 2
    assert value(samples, "minsheng_intake_latency_seconds_count", source="nowhere") is None
    assert value(samples, "minsheng_intake_latency_seconds_bucket", source="web", le="+Inf") == 2
    doc = await status(gw)
    [rejection] = doc["rejections"]
    assert rejection["source"] == "web"
    assert {r["code"] for r in rejection["reasons"]} == {"invalid_phone", "required"}
    assert all(r["zh"] and r["en"] for r in rejection["reasons"])


async def _dead_letters_are_visible(gw: Gateway, receiver: Receiver) -> None:
    async def all_dead() -> bool:
        return value(await scrape(gw), "minsheng_outbox_dead", sink=SINK) == 3

    await wait_for(all_dead)
    samples = await scrape(gw)
    assert value(samples, "minsheng_outbox_pending", sink=SINK) == 0
    assert value(samples, "minsheng_outbox_oldest_pending_age_seconds", sink=SINK) == 0
    dead_age = value(samples, "minsheng_outbox_oldest_dead_age_seconds", sink=SINK)
    assert dead_age is not None and dead_age > 0  # created before two failed attempts
    assert value(samples, "minsheng_quarantine_oldest_open_age_seconds") == 0
    assert value(samples, "minsheng_delivery_attempts_total", sink=SINK, outcome="failed") == 6
    assert value(samples, "minsheng_delivery_attempts_total", sink=SINK, outcome="delivered") == 0
    assert len(receiver.requests) == 6  # two attempts per case, as counted
    doc = await status(gw)
    assert doc["dead_letters"] == 3
    [sink] = doc["sinks"]
    assert (sink["name"], sink["kind"], sink["dead"], sink["failed_here"]) == (SINK, "http", 3, 6)
    assert {"level": "warning", "zh": "死信 3 条", "en": "3 dead letter(s)"} in \
        doc["summary"]["problems"]


async def _replayed_dead_letters_are_delivered(gw: Gateway) -> None:
    async def delivered() -> bool:
        return value(await scrape(gw), "minsheng_outbox_delivered", sink=SINK) == 3

    await wait_for(delivered)
    samples = await scrape(gw)
    assert value(samples, "minsheng_outbox_dead", sink=SINK) == 0
    assert value(samples, "minsheng_outbox_oldest_dead_age_seconds", sink=SINK) == 0
    assert value(samples, "minsheng_delivery_attempts_total", sink=SINK, outcome="delivered") == 3
    doc = await status(gw)
    assert doc["summary"] == {"state": "ok", "problems": []}


async def test_backlog_age_is_measured_while_the_sink_keeps_failing(
    tmp_path: Path, store_url: str
) -> None:
    receiver = Receiver()
    await receiver.start()
    receiver.fail_always(503)
    sink = {**failing_sink(receiver.url), "retry": {"max_attempts": 1000, "base_delay_s": 0.05,
                                                     "max_delay_s": 0.1}}
    config = gateway_config(tmp_path, store_url, sinks=[sink], ops=NO_CACHE)
    try:
        async with running(Gateway(config)) as gw:
            async with httpx.AsyncClient(base_url=base_url(gw)) as client:
                assert (await client.post("/intake/web", json=GOOD)).status_code == 202
            await receiver.wait_for(lambda: len(receiver.requests) >= 2)
            await asyncio.sleep(1.1)  # let the oldest entry age past a second
            samples = await scrape(gw)
            assert value(samples, "minsheng_outbox_pending", sink=SINK) == 1
            assert (value(samples, "minsheng_outbox_oldest_pending_age_seconds", sink=SINK)
                    or 0) >= 1.0
            assert value(samples, "minsheng_outbox_dead", sink=SINK) == 0
            doc = await status(gw)
            assert doc["backlog"]["pending"] == 1
            assert doc["backlog"]["oldest_pending_age_s"] >= 1.0
    finally:
        await receiver.close()


async def test_delivered_figures_never_go_down_when_old_deliveries_are_deleted(
    tmp_path: Path, store_url: str
) -> None:
    sink = {"name": SINK, "kind": "jsonl", "path": str(tmp_path / "cases.jsonl"),
            "poll_interval_s": 0.1}
    config = gateway_config(tmp_path, store_url, sinks=[sink], ops=NO_CACHE)
    topics = ["共享单车乱停放", "夜间施工噪音扰民", "小区路灯损坏", "垃圾清运不及时"]

    async def submit(n: int) -> None:
        form = {**GOOD, "subject": topics[n],
                "content": f"{topics[n]}，已经持续{n + 2}周，请尽快处理。"}
        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            assert (await client.post("/intake/web", json=form)).status_code == 202

    async def delivered(n: int) -> bool:
        return value(await scrape(gw), "minsheng_outbox_delivered", sink=SINK) == n

    async with running(Gateway(config)) as gw:
        for n in range(3):
            await submit(n)
        await wait_for(lambda: delivered(3))
        # The first two were delivered 8 days ago: the retention (7 days) deletes them.
        await gw.store.write(lambda tx: tx.execute(
            "UPDATE outbox SET finished_at = finished_at - ? "
            "WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 2)", (8 * 86400.0,)))
        assert await gw.forwarder.purge_delivered() == {SINK: 2}
        kept = await gw.store.read(lambda tx: tx.fetchone("SELECT COUNT(*) FROM outbox"))
        assert int(kept[0]) == 1
        samples = await scrape(gw)
        assert value(samples, "minsheng_outbox_delivered", sink=SINK) == 3
        assert value(samples, "minsheng_outbox_pending", sink=SINK) == 0
        assert value(samples, "minsheng_outbox_dead", sink=SINK) == 0
        doc = await status(gw)
        [shown] = doc["sinks"]
        assert (shown["name"], shown["delivered"], shown["pending"], shown["dead"]) == \
            (SINK, 3, 0, 0)
        assert doc["summary"] == {"state": "ok", "problems": []}
        await submit(3)
        await wait_for(lambda: delivered(4))
        samples = await scrape(gw)
        assert value(samples, "minsheng_delivery_attempts_total", sink=SINK,
                     outcome="delivered") == 4


async def test_each_gateway_has_its_own_registry(tmp_path: Path) -> None:
    first = Gateway(gateway_config(tmp_path / "a", f"sqlite:///{tmp_path / 'a.db'}"))
    second = Gateway(gateway_config(tmp_path / "b", f"sqlite:///{tmp_path / 'b.db'}"))
    async with running(first), running(second):
        async with httpx.AsyncClient(base_url=base_url(first)) as client:
            assert (await client.post("/intake/web", json=GOOD)).status_code == 202
        one, two = await scrape(first), await scrape(second)
    assert value(one, "minsheng_intake_items_total", source="web", channel="web",
                 outcome="new") == 1
    assert value(two, "minsheng_intake_items_total", source="web", channel="web",
                 outcome="new") == 0
    assert value(one, "minsheng_intake_latency_seconds_count", source="web") == 1
    assert value(two, "minsheng_intake_latency_seconds_count", source="web") is None
    assert first.metrics.registry is not second.metrics.registry


async def test_the_store_writers_work_is_counted(tmp_path: Path, store_url: str) -> None:
    """Group commits and the writes they held."""
    gw = Gateway(gateway_config(tmp_path, store_url))
    async with running(gw):
        before = await scrape(gw)
        async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
            answers = await asyncio.gather(*[client.post("/intake/web", json={
                **GOOD, "submission_id": f"m-{n}", "phone": f"139{n:08d}"}) for n in range(16)])
        assert all(a.status_code == 202 for a in answers)
        after = await scrape(gw)

    def grew(name: str) -> float:
        return (value(after, name) or 0.0) - (value(before, name) or 0.0)

    batches, units = grew("minsheng_store_batches_total"), grew("minsheng_store_batch_units_total")
    assert 1 <= batches <= units and units >= 16  # each submission one write at least
    assert value(after, "minsheng_store_conflict_retries_total") == 0
    assert value(after, "minsheng_store_batch_reruns_total") == 0
    # only a SQLite worker group's writers take turns (tests/test_workers.py)
    assert value(after, "minsheng_store_turn_wait_seconds_total") == 0


async def test_the_loop_and_the_writer_threads_cpu_are_told_apart(
    tmp_path: Path, store_url: str
) -> None:
    """Each label is its own thread's CPU: ``event_loop`` the thread that answers the
    scrape (this test's, which has done seconds of work: imports, the gateway's start),
    ``store_writer`` the store's writer thread (milliseconds). Swapped labels, or the
    process's CPU under either, fail."""
    gw = Gateway(gateway_config(tmp_path, store_url))
    async with running(gw):
        async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
            answers = await asyncio.gather(*[client.post("/intake/web", json={
                **GOOD, "submission_id": f"t-{n}", "phone": f"137{n:08d}"}) for n in range(8)])
        assert all(a.status_code == 202 for a in answers)
        writer = next(t for t in threading.enumerate() if t.name == "store-write")
        loop_before = time.thread_time()
        samples = await scrape(gw)
        loop_after = time.thread_time()
        writer_now = time.clock_gettime(time.pthread_getcpuclockid(writer.ident or 0))
        process_now = time.process_time()
    loop = value(samples, "minsheng_thread_cpu_seconds_total", thread="event_loop")
    written = value(samples, "minsheng_thread_cpu_seconds_total", thread="store_writer")
    assert loop is not None and written is not None
    tick = 0.02  # /proc counts in 10 ms ticks
    assert loop_before - tick <= loop <= loop_after + tick
    assert 0 <= written <= writer_now + tick
    assert loop + written <= process_now + tick
    assert writer_now < loop_before / 2  # the two threads' figures differ by far


async def test_phone_kpis_and_hot_topics_come_from_their_modules(
    tmp_path: Path, monkeypatch: Any
) -> None:
    calls = types.ModuleType("adapters.cdr_webhook.flow")
    seen: list[float] = []

    def kpis(tx: Any, now: float) -> dict[str, float]:
        seen.append(now)
        row = tx.fetchone("SELECT COUNT(*) FROM cases")  # a real query on the store
        return {"answered_within_15s_ratio": 0.875, "abandoned_total": 4 + int(row[0])}

    calls.kpis = kpis  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "adapters.cdr_webhook.flow", calls)
    async with running(Gateway(gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}"))) as gw:
        await gw.store.write(lambda tx: cases.next_value(tx, dedup_index.HOT_TOPIC_SCOPE))
        samples = await scrape(gw)
        doc = await status(gw)
        calls.kpis = None  # type: ignore[attr-defined]  # a module without the function
        without = await scrape(gw)
    assert value(samples, "minsheng_calls_answered_within_15s_ratio") == 0.875
    assert value(samples, "minsheng_calls_abandoned_total") == 4
    assert value(samples, "minsheng_hot_topic_events_total") == 1
    assert doc["calls"] == {"answered_within_15s_ratio": 0.875, "abandoned_total": 4}
    assert seen and abs(seen[0] - time.time()) < 60
    assert value(without, "minsheng_calls_answered_within_15s_ratio") is None
    assert value(without, "minsheng_calls_abandoned_total") is None
    assert value(without, "minsheng_store_up") == 1


async def test_a_broken_optional_provider_does_not_break_the_scrape(
    tmp_path: Path, monkeypatch: Any
) -> None:
    calls = types.ModuleType("adapters.cdr_webhook.flow")

    def kpis(tx: Any, now: float) -> dict[str, float]:
        tx.fetchone("SELECT * FROM no_such_table")
        return {}

    calls.kpis = kpis  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "adapters.cdr_webhook.flow", calls)
    async with running(Gateway(gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}"))) as gw:
        samples = await scrape(gw)
        doc = await status(gw)
    assert value(samples, "minsheng_store_up") == 1
    assert value(samples, "minsheng_outbox_pending", sink="file") == 0
    assert value(samples, "minsheng_calls_answered_within_15s_ratio") is None
    assert doc["calls"] is None and doc["store"]["ok"] is True
