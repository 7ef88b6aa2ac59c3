"""The store's query modules on both engines: migrations, journal, sequences, cases,
outbox (with the forwarder's ``settle``), quarantine, checkpoints and leases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog

import gateway.delivery.forwarder
from adapters.cdr_webhook import call_store as store_calls
from gateway.delivery.forwarder import Forwarder, settle
from gateway.model.errors import PermanentSinkError, RetriableSinkError
from gateway.model.schema import RawRecord
from gateway.store import Store, Tx, cases, checkpoints, journal, outbox, quarantine
from gateway.store.migrations import MIGRATIONS, SchemaTooNew, migrate
from gateway.store.outbox import Delivery
from gateway.support.config import RetryPolicy
from tests.conftest import TEST_PRIVACY
from tests.procs import run_cli, write_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
TABLES = {
    "schema_migrations", "raw_records", "cases", "dedup_keys", "outbox", "quarantine",
    "checkpoints", "sequences", "leases",
}


class FakeClock:
    """Stands in for the ``time`` module of the store modules: time moves when told to."""

    def __init__(self, start: float = 1_574_213_400.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    for module in (outbox, checkpoints, gateway.delivery.forwarder):
        monkeypatch.setattr(module, "time", fake)
    yield fake


def make_raw(source_ref: str = "call-1", **changes: Any) -> RawRecord:
    """A phone record whose payload is not UTF-8 and whose metadata is Chinese."""
    fields: dict[str, Any] = {
        "channel": "phone",
        "source": "hotline",
        "source_ref": source_ref,
        "payload": b"\xff\xfe\x00\x80" + "夜间施工噪音扰民".encode("gbk") + b"\x00end",
        "content_type": "application/octet-stream",
        "received_at": datetime(2019, 11, 20, 9, 30, 0, 123456, tzinfo=SHANGHAI),
        "metadata": {"来电号码": "13800138000", "备注": "夜间施工", "nested": {"k": [1, "二"]}},
        "idempotency_key": "idem-1",
    }
    fields.update(changes)
    return RawRecord(**fields)


def add_case(tx: Tx, code: str, source: str = "web", document: str = "{}") -> cases.CaseRow:
    raw_id = journal.insert_raw(tx, make_raw(code, source=source), journal.ACCEPTED)
    return cases.insert(tx, case_code=code, source=source, source_ref=code, channel="web",
                        raw_id=raw_id, document=document)


def _table_names(tx: Tx) -> set[str]:
    if tx.dialect.name == "sqlite":
        rows = tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = tx.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    return {str(r[0]) for r in rows}


def _outbox_row(tx: Tx, outbox_id: int) -> tuple[str, int, float, str | None]:
    row = tx.fetchone(
        "SELECT state, attempts, next_attempt_at, last_error FROM outbox WHERE id = ?",
        (outbox_id,),
    )
    return str(row[0]), int(row[1]), float(row[2]), row[3]


# -- migrations ------------------------------------------------------------------------


async def test_a_store_a_newer_gateway_migrated_is_refused(store_url: str,
                                                           tmp_path: Path) -> None:
    """A replica not yet upgraded, restarting after a newer one applied a migration it does
    not know, refuses to start (and a command says so in one line) instead of writing
    to a schema it does not know."""
    newest = max(m[0] for m in MIGRATIONS)
    first = Store.from_url(store_url)
    await first.start()
    await first.write(lambda tx: tx.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)",
        (newest + 1, "from a newer gateway")))
    await first.close()
    again = Store.from_url(store_url)
    with pytest.raises(SchemaTooNew) as refused:
        await again.start()
    await again.close()
    assert refused.value.unknown == [newest + 1]
    assert f"version {newest + 1}, newer than this gateway's {newest}" in str(refused.value)
    config = write_config(tmp_path / "gateway.yaml", {
        "store": {"url": store_url}, "data_dir": str(tmp_path / "var"),
        "privacy": TEST_PRIVACY})
    done = run_cli("status", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == str(refused.value)


async def test_migrations_idempotent_across_restarts(store_url: str) -> None:
    first = Store.from_url(store_url)
    await first.start()
    await first.write(lambda tx: checkpoints.put(tx, "web", {"kept": True}))
    await first.close()

    second = Store.from_url(store_url)
    await second.start()  # migrating an up-to-date database again must not fail
    try:
        assert await second.write(migrate) == []
        assert await second.read(_table_names) >= TABLES
        versions = await second.read(
            lambda tx: tx.fetchall("SELECT version FROM schema_migrations ORDER BY version")
        )
        assert [int(r[0]) for r in versions] == [m[0] for m in MIGRATIONS]
        assert await second.read(lambda tx: checkpoints.get(tx, "web")) == {"kept": True}
    finally:
        await second.close()


async def test_two_stores_starting_together_migrate_once(store_url: str) -> None:
    a, b = Store.from_url(store_url), Store.from_url(store_url)
    await asyncio.gather(a.start(), b.start())
    try:
        rows = await a.read(lambda tx: tx.fetchall("SELECT version FROM schema_migrations"))
        assert len(rows) == len(MIGRATIONS)
        assert await b.read(_table_names) >= TABLES
    finally:
        await asyncio.gather(a.close(), b.close())


# -- journal ---------------------------------------------------------------------------


async def test_journal_round_trip_keeps_bytes_and_chinese(store: Store) -> None:
    raw = make_raw()
    detail = {"原因": "测试", "n": 1}
    raw_id = await store.write(lambda tx: journal.insert_raw(tx, raw, journal.REJECTED, detail))
    entry = await store.read(lambda tx: journal.get(tx, raw_id))
    assert entry is not None
    assert entry.id == raw_id
    assert entry.record == raw
    assert entry.record.payload == raw.payload  # non-UTF-8 bytes and NUL kept exactly
    assert entry.record.metadata["备注"] == "夜间施工"
    assert entry.record.received_at.utcoffset() is not None
    assert entry.status == journal.REJECTED
    assert entry.detail == detail
    assert entry.case_id is None
    assert await store.read(lambda tx: journal.get(tx, raw_id + 1000)) is None


async def test_journal_record_without_optional_fields(store: Store) -> None:
    raw = make_raw(payload=b"", metadata={}, idempotency_key=None)
    raw_id = await store.write(lambda tx: journal.insert_raw(tx, raw, journal.ACCEPTED))
    entry = await store.read(lambda tx: journal.get(tx, raw_id))
    assert entry is not None
    assert entry.record == raw
    assert entry.detail is None


async def test_journal_set_outcome_latest_and_counts(store: Store) -> None:
    def fill(tx: Tx) -> list[int]:
        ids = [journal.insert_raw(tx, make_raw(f"r{i}"), journal.ACCEPTED) for i in range(5)]
        journal.insert_raw(tx, make_raw("q"), journal.QUARANTINED, {"error": "KeyError"})
        journal.set_outcome(tx, ids[1], journal.REPLAY, None, {"case_code": "CY-1"})
        journal.set_outcome(tx, ids[3], journal.REPLAY, None, {"case_code": "CY-3"})
        return ids

    ids = await store.write(fill)
    counts = await store.read(journal.count_by_status)
    assert counts == {journal.ACCEPTED: 3, journal.REPLAY: 2, journal.QUARANTINED: 1}

    replays = await store.read(lambda tx: journal.latest(tx, journal.REPLAY))
    assert [e.id for e in replays] == [ids[3], ids[1]]  # newest first
    assert replays[0].detail == {"case_code": "CY-3"}
    assert replays[0].record.source_ref == "r3"
    accepted = await store.read(lambda tx: journal.latest(tx, journal.ACCEPTED, limit=2))
    assert [e.id for e in accepted] == [ids[4], ids[2]]
    assert await store.read(lambda tx: journal.latest(tx, journal.FILTERED)) == []


# -- sequences -------------------------------------------------------------------------


async def test_sequences_count_per_scope(store: Store) -> None:
    def take(tx: Tx) -> list[int]:
        return [cases.next_value(tx, "a") for _ in range(3)] + [cases.next_value(tx, "b")]

    assert await store.write(take) == [1, 2, 3, 1]
    assert await store.write(lambda tx: cases.next_value(tx, "a")) == 4


# -- cases -----------------------------------------------------------------------------


async def test_case_insert_and_lookup(store: Store) -> None:
    row = await store.write(lambda tx: add_case(tx, "CY-1", document='{"body": "噪音"}'))
    assert row.case_code == "CY-1"
    assert row.feed_pos >= 1
    by_code = await store.read(lambda tx: cases.get_by_code(tx, "CY-1"))
    assert by_code == row
    assert await store.read(lambda tx: cases.get_by_id(tx, row.id)) == row
    assert await store.read(lambda tx: cases.get_by_code(tx, "CY-404")) is None
    assert await store.read(cases.count) == 1


async def test_case_keys_are_scoped_by_source(store: Store) -> None:
    def fill(tx: Tx) -> tuple[int, int]:
        web = add_case(tx, "CY-W", source="web")
        mail = add_case(tx, "CY-E", source="mail")
        cases.add_keys(tx, "web", ["ref:42", "idem:k"], web.id)
        cases.add_keys(tx, "mail", ["ref:42"], mail.id)
        cases.add_keys(tx, "web", ["ref:42"], mail.id)  # already filed: the first case stays
        return web.id, mail.id

    web_id, mail_id = await store.write(fill)
    find = cases.find_by_key
    assert await store.read(lambda tx: find(tx, "web", ["ref:42"])) == (web_id, "CY-W")
    assert await store.read(lambda tx: find(tx, "mail", ["ref:42"])) == (mail_id, "CY-E")
    assert await store.read(lambda tx: find(tx, "web", ["ref:x", "idem:k"])) == (web_id, "CY-W")
    assert await store.read(lambda tx: find(tx, "mail", ["idem:k"])) is None
    assert await store.read(lambda tx: find(tx, "feed", ["ref:42"])) is None
    assert await store.read(lambda tx: find(tx, "web", [])) is None


async def _whole_feed(store: Store, page: int) -> list[cases.CaseRow]:
    seen: list[cases.CaseRow] = []
    cursor = 0
    while True:
        rows = await store.read(lambda tx, at=cursor: cases.feed_after(tx, at, page))
        assert len(rows) <= page
        if not rows:
            return seen
        seen.extend(rows)
        cursor = rows[-1].feed_pos


async def test_feed_pages_in_order_and_update_moves_to_end(store: Store) -> None:
    codes = [f"CY-{i}" for i in range(7)]
    rows = await store.write(lambda tx: [add_case(tx, c, document=f'"{c}"') for c in codes])
    feed = await _whole_feed(store, page=3)
    assert [r.case_code for r in feed] == codes
    assert [r.feed_pos for r in feed] == sorted({r.feed_pos for r in feed})
    end = feed[-1].feed_pos
    assert await store.read(lambda tx: cases.feed_after(tx, end, 10)) == []

    new_pos = await store.write(lambda tx: cases.update_document(tx, rows[1].id, '"changed"'))
    assert new_pos > end
    tail = await store.read(lambda tx: cases.feed_after(tx, end, 10))
    assert [(r.case_code, r.document, r.feed_pos) for r in tail] == [("CY-1", '"changed"', new_pos)]
    feed = await _whole_feed(store, page=2)
    assert [r.case_code for r in feed] == [c for c in codes if c != "CY-1"] + ["CY-1"]


# -- outbox ----------------------------------------------------------------------------


async def test_enqueue_one_entry_per_sink(store: Store, clock: FakeClock) -> None:
    def fill(tx: Tx) -> int:
        row = add_case(tx, "CY-1", document='{"case_code": "CY-1"}')
        outbox.enqueue(tx, ["platform", "file"], row.id)
        outbox.enqueue(tx, ["platform"], None, kind="event", payload='{"event": "closed"}')
        return row.id

    await store.write(fill)
    platform = await store.write(lambda tx: outbox.claim(tx, "platform", 10, 30, "me"))
    assert [(d.kind, d.case_code, d.body) for d in platform] == [
        ("case", "CY-1", '{"case_code": "CY-1"}'), ("event", None, '{"event": "closed"}'),
    ]
    assert all(d.sink == "platform" and d.attempts == 0 for d in platform)
    file = await store.write(lambda tx: outbox.claim(tx, "file", 10, 30, "me"))
    assert [d.case_code for d in file] == ["CY-1"]
    assert await store.write(lambda tx: outbox.claim(tx, "other", 10, 30, "me")) == []


async def _enqueue_cases(store: Store, n: int, sink: str = "s", first: int = 0) -> None:
    def fill(tx: Tx) -> None:
        for i in range(first, first + n):
            outbox.enqueue(tx, [sink], add_case(tx, f"CY-{i}").id)

    await store.write(fill)


async def test_claim_oldest_first_with_limit_and_lease(store: Store, clock: FakeClock) -> None:
    await _enqueue_cases(store, 5)
    first = await store.write(lambda tx: outbox.claim(tx, "s", 2, 30, "a"))
    second = await store.write(lambda tx: outbox.claim(tx, "s", 2, 30, "a"))
    third = await store.write(lambda tx: outbox.claim(tx, "s", 2, 30, "a"))
    assert [d.case_code for d in first + second + third] == [f"CY-{i}" for i in range(5)]
    assert [len(first), len(second), len(third)] == [2, 2, 1]
    assert [d.outbox_id for d in first] == sorted(d.outbox_id for d in first)

    clock.advance(29)  # every entry is leased: nothing to claim until the leases run out
    assert await store.write(lambda tx: outbox.claim(tx, "s", 10, 30, "b")) == []
    clock.advance(2)
    again = await store.write(lambda tx: outbox.claim(tx, "s", 10, 30, "b"))
    assert [d.case_code for d in again] == [f"CY-{i}" for i in range(5)]


async def test_release_leases_of_one_owner(store: Store, clock: FakeClock) -> None:
    await _enqueue_cases(store, 2)
    await store.write(lambda tx: outbox.claim(tx, "s", 1, 60, "a"))
    await store.write(lambda tx: outbox.claim(tx, "s", 1, 60, "b"))
    await store.write(lambda tx: outbox.release_leases(tx, "a"))
    freed = await store.write(lambda tx: outbox.claim(tx, "s", 10, 60, "c"))
    assert [d.case_code for d in freed] == ["CY-0"]
    await store.write(lambda tx: outbox.release_leases(tx))
    freed = await store.write(lambda tx: outbox.claim(tx, "s", 10, 60, "c"))
    assert [d.case_code for d in freed] == ["CY-0", "CY-1"]


async def test_delivered_reschedule_and_dead_letter(store: Store, clock: FakeClock) -> None:
    await _enqueue_cases(store, 3)
    a, b, c = await store.write(lambda tx: outbox.claim(tx, "s", 3, 30, "me"))
    await store.write(lambda tx: outbox.mark_delivered(tx, [a.outbox_id]))
    await store.write(lambda tx: outbox.reschedule(tx, b.outbox_id, clock.now + 60, "HTTP 503"))
    await store.write(lambda tx: outbox.dead_letter(tx, c.outbox_id, "HTTP 400 字段错误"))

    assert await store.read(lambda tx: _outbox_row(tx, b.outbox_id)) == (
        "pending", 1, clock.now + 60, "HTTP 503",
    )
    clock.advance(59)  # the lease is gone, but the entry is not due yet
    assert await store.write(lambda tx: outbox.claim(tx, "s", 10, 30, "me")) == []
    clock.advance(2)
    due = await store.write(lambda tx: outbox.claim(tx, "s", 10, 30, "me"))
    assert [(d.outbox_id, d.attempts) for d in due] == [(b.outbox_id, 1)]

    dead = await store.read(outbox.list_dead)
    assert [(d.outbox_id, d.case_code, d.attempts, d.last_error) for d in dead] == [
        (c.outbox_id, "CY-2", 1, "HTTP 400 字段错误"),
    ]
    assert dead[0].sink == "s" and dead[0].kind == "case"
    assert dead[0].finished_at == clock.now - 61


async def test_replay_dead_by_id_and_all(store: Store, clock: FakeClock) -> None:
    await _enqueue_cases(store, 3)
    batch = await store.write(lambda tx: outbox.claim(tx, "s", 3, 30, "me"))

    def kill_all(tx: Tx) -> None:
        for d in batch:
            outbox.dead_letter(tx, d.outbox_id, "refused")

    await store.write(kill_all)
    ids = [d.outbox_id for d in batch]
    assert await store.write(lambda tx: outbox.replay_dead(tx, [ids[0]])) == 1
    assert await store.write(lambda tx: outbox.replay_dead(tx, [ids[0]])) == 0  # not dead now
    assert [d.outbox_id for d in await store.read(outbox.list_dead)] == ids[1:]
    back = await store.write(lambda tx: outbox.claim(tx, "s", 10, 30, "me"))
    assert [(d.outbox_id, d.attempts) for d in back] == [(ids[0], 0)]

    assert await store.write(lambda tx: outbox.replay_dead(tx, None)) == 2
    assert await store.read(outbox.list_dead) == []
    back = await store.write(lambda tx: outbox.claim(tx, "s", 10, 30, "me"))
    assert [d.outbox_id for d in back] == ids[1:]


async def test_outbox_stats_per_sink(store: Store, clock: FakeClock) -> None:
    assert await store.read(outbox.stats) == {}
    await _enqueue_cases(store, 4, sink="a")
    await _enqueue_cases(store, 1, sink="b", first=10)
    clock.advance(42)
    batch = await store.write(lambda tx: outbox.claim(tx, "a", 2, 30, "me"))
    await store.write(lambda tx: outbox.mark_delivered(tx, [batch[0].outbox_id]))
    await store.write(lambda tx: outbox.dead_letter(tx, batch[1].outbox_id, "refused"))
    stats = await store.read(outbox.stats)
    assert stats == {
        "a": {"pending": 2, "delivered": 1, "dead": 1, "oldest_pending_age_s": 42.0,
              "oldest_dead_age_s": 42.0},
        "b": {"pending": 1, "delivered": 0, "dead": 0, "oldest_pending_age_s": 42.0,
              "oldest_dead_age_s": 0.0},
    }


# -- retention of delivered entries ----------------------------------------------------

DAY = 86400.0


async def _outbox_states(store: Store) -> list[tuple[int, str]]:
    rows = await store.read(lambda tx: tx.fetchall("SELECT id, state FROM outbox ORDER BY id"))
    return [(int(r[0]), str(r[1])) for r in rows]


def _delivered_of(stats: dict[str, dict[str, Any]]) -> dict[str, tuple[int, int, int]]:
    return {sink: (e["pending"], e["delivered"], e["dead"]) for sink, e in stats.items()}


async def test_purge_deletes_only_deliveries_past_the_retention(
    store: Store, clock: FakeClock
) -> None:
    await _enqueue_cases(store, 6, sink="a")
    await _enqueue_cases(store, 2, sink="b", first=10)
    a = [d.outbox_id for d in await store.write(lambda tx: outbox.claim(tx, "a", 10, 30, "me"))]
    b = [d.outbox_id for d in await store.write(lambda tx: outbox.claim(tx, "b", 10, 30, "me"))]

    def first_round(tx: Tx) -> None:
        outbox.mark_delivered(tx, [a[0], a[1], b[0]])
        outbox.dead_letter(tx, a[2], "HTTP 400 字段错误")
        outbox.reschedule(tx, a[3], clock.now + 30 * DAY, "HTTP 503")

    await store.write(first_round)  # a[4] and a[5] stay pending (leased)
    clock.advance(8 * DAY)
    await store.write(lambda tx: outbox.mark_delivered(tx, [a[4], b[1]]))
    before = _delivered_of(await store.read(outbox.stats))
    assert before == {"a": (2, 3, 1), "b": (0, 2, 0)}

    cutoff = clock.now - 7 * DAY
    assert await store.write(lambda tx: outbox.purge_delivered(tx, cutoff)) == {"a": 2, "b": 1}
    assert await _outbox_states(store) == [
        (a[2], "dead"), (a[3], "pending"), (a[4], "delivered"), (a[5], "pending"),
        (b[1], "delivered"),
    ]
    assert await store.write(lambda tx: outbox.purge_delivered(tx, cutoff)) == {}
    # What the operators see: delivered still counts the deleted entries.
    assert _delivered_of(await store.read(outbox.stats)) == before

    clock.advance(365 * DAY)  # a year on: dead and pending entries are still kept
    cutoff = clock.now - 7 * DAY
    # b[1] has the highest id: kept, so SQLite never hands that id out again.
    assert await store.write(lambda tx: outbox.purge_delivered(tx, cutoff)) == {"a": 1}
    assert await _outbox_states(store) == [
        (a[2], "dead"), (a[3], "pending"), (a[5], "pending"), (b[1], "delivered"),
    ]
    assert _delivered_of(await store.read(outbox.stats)) == before
    dead = await store.read(outbox.list_dead)  # minsheng dlq list / replay
    assert [(d.outbox_id, d.case_code, d.last_error) for d in dead] == [
        (a[2], "CY-2", "HTTP 400 字段错误"),
    ]
    assert await store.write(lambda tx: outbox.replay_dead(tx, None)) == 1
    back = await store.write(lambda tx: outbox.claim(tx, "a", 10, 30, "me"))
    assert [d.outbox_id for d in back] == [a[2], a[3], a[5]]


async def test_purge_never_lets_an_id_be_used_again(store: Store, clock: FakeClock) -> None:
    """The http sink's idempotency keys of updates and events carry the outbox id."""
    await _enqueue_cases(store, 3)
    batch = await store.write(lambda tx: outbox.claim(tx, "s", 10, 30, "me"))
    ids = [d.outbox_id for d in batch]
    await store.write(lambda tx: outbox.mark_delivered(tx, ids))
    clock.advance(30 * DAY)
    assert await store.write(lambda tx: outbox.purge_delivered(tx, clock.now)) == {"s": 2}
    assert await _outbox_states(store) == [(ids[2], "delivered")]
    await store.write(lambda tx: outbox.enqueue(tx, ["s"], None, kind="event", payload="{}"))
    [event] = await store.write(lambda tx: outbox.claim(tx, "s", 10, 30, "me"))
    assert event.outbox_id > max(ids)


async def _delivered_events(store: Store, n: int, sink: str = "s") -> list[int]:
    """``n`` event entries (no case behind them), all delivered now."""
    def fill(tx: Tx) -> list[int]:
        for _ in range(n):
            outbox.enqueue(tx, [sink], None, kind="event", payload="{}")
        claimed = outbox.claim(tx, sink, n, 30, "me")
        return [d.outbox_id for d in claimed]

    return await store.write(fill)


async def test_purge_goes_in_chunks_oldest_deliveries_first(
    store: Store, clock: FakeClock
) -> None:
    ids = await _delivered_events(store, 2501)
    late, early = ids[:1250], ids[1250:]  # the later ids were delivered first
    await store.write(lambda tx: outbox.mark_delivered(tx, early))
    clock.advance(1)
    await store.write(lambda tx: outbox.mark_delivered(tx, late))
    clock.advance(8 * DAY)
    cutoff = clock.now - 7 * DAY

    first = await store.write(lambda tx: outbox.purge_delivered(tx, cutoff, 1000))
    assert first == {"s": 1000}
    kept = {i for i, _ in await _outbox_states(store)}
    assert set(late) <= kept  # delivered later: not in the first chunk
    sizes = [first["s"]]
    while True:
        chunk = await store.write(lambda tx: outbox.purge_delivered(tx, cutoff, 1000))
        if not chunk:
            break
        sizes.append(chunk["s"])
    assert sizes == [1000, 1000, 500]  # 2501 less the highest id
    assert await _outbox_states(store) == [(ids[-1], "delivered")]
    assert (await store.read(outbox.stats))["s"]["delivered"] == 2501


async def test_forwarder_purges_every_chunk_and_logs_one_line(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await _delivered_events(store, 2101, sink="file")
    await store.write(lambda tx: outbox.mark_delivered(tx, ids))
    young = await _delivered_events(store, 3, sink="platform")
    clock.advance(6 * DAY)
    await store.write(lambda tx: outbox.mark_delivered(tx, young))
    clock.advance(2 * DAY)
    chunks: list[dict[str, int]] = []
    real_purge = outbox.purge_delivered

    def spy(tx: Tx, before: float, limit: int = outbox.PURGE_CHUNK) -> dict[str, int]:
        assert limit <= 1000
        chunks.append(real_purge(tx, before, limit))
        return chunks[-1]

    monkeypatch.setattr(outbox, "purge_delivered", spy)
    assert await Forwarder(store, [], retention_s=None).purge_delivered() == {}
    assert chunks == []
    forwarder = Forwarder(store, [], retention_s=7 * DAY)
    with structlog.testing.capture_logs() as logs:
        assert await forwarder.purge_delivered() == {"file": 2101}
        assert await forwarder.purge_delivered() == {}  # nothing left: nothing logged
    assert chunks == [{"file": 1000}, {"file": 1000}, {"file": 101}, {}]
    assert logs == [{"event": "outbox_purged", "log_level": "info", "deleted": 2101,
                     "sinks": {"file": 2101}, "chunks": 3, "retention_days": 7.0}]
    assert await _outbox_states(store) == [(i, "delivered") for i in young]
    stats = await store.read(outbox.stats)
    assert (stats["file"]["delivered"], stats["platform"]["delivered"]) == (2101, 3)


async def test_forwarder_purges_again_every_interval(store: Store, clock: FakeClock) -> None:
    forwarder = Forwarder(store, [], retention_s=7 * DAY)
    forwarder.retention_interval_s = 0.05
    await forwarder.start()
    try:
        ids = await _delivered_events(store, 3)
        await store.write(lambda tx: outbox.mark_delivered(tx, ids))
        await asyncio.sleep(0.2)  # rounds go by: nothing is old enough yet
        assert len(await _outbox_states(store)) == 3
        clock.advance(8 * DAY)
        for _ in range(200):
            if await _outbox_states(store) == [(ids[-1], "delivered")]:
                break
            await asyncio.sleep(0.02)
        assert await _outbox_states(store) == [(ids[-1], "delivered")]
    finally:
        await asyncio.wait_for(forwarder.stop(), timeout=5)


class _PlanTx:
    """Answers ``fetchall`` with SQLite's query plan of the statement instead of running it."""

    def __init__(self, tx: Tx) -> None:
        self.tx, self.dialect = tx, tx.dialect
        self.plans: list[str] = []

    def fetchall(self, sql: str, params: Any = ()) -> list[Any]:
        plan = self.tx.fetchall("EXPLAIN QUERY PLAN " + sql, params)
        self.plans.append(" | ".join(str(r[-1]) for r in plan))
        return []

    def fetchone(self, sql: str, params: Any = ()) -> Any:
        self.fetchall(sql, params)
        return (0,)


async def test_purge_reads_the_delivered_index_on_sqlite(tmp_path: Path) -> None:
    """A years-old backlog: each chunk walks the partial index, not the whole table."""
    sqlite = Store.from_url(f"sqlite:///{tmp_path / 'plan.db'}")
    await sqlite.start()

    def plans(tx: Tx) -> list[str]:
        planner = _PlanTx(tx)
        outbox.purge_delivered(planner, 0.0)  # type: ignore[arg-type]
        return planner.plans

    try:
        [plan] = await sqlite.read(plans)
    finally:
        await sqlite.close()
    assert "INDEX outbox_delivered (state=? AND finished_at<?)" in plan, plan
    assert "TEMP B-TREE" not in plan and "SCAN" not in plan, plan


async def test_abandoned_total_reads_its_partial_index_on_sqlite(tmp_path: Path) -> None:
    """Counted at every scrape: the abandoned calls only, not every call ever stored."""
    sqlite = Store.from_url(f"sqlite:///{tmp_path / 'plan.db'}")
    await sqlite.start()

    def plans(tx: Tx) -> list[str]:
        planner = _PlanTx(tx)
        store_calls.count_abandoned(planner)  # type: ignore[arg-type]
        return planner.plans

    try:
        [plan] = await sqlite.read(plans)
    finally:
        await sqlite.close()
    assert plan == "SCAN calls USING INDEX calls_abandoned", plan


# -- settle (forwarder) ----------------------------------------------------------------

POLICY = RetryPolicy(max_attempts=4, max_age_s=3600, base_delay_s=1.0, max_delay_s=600)


async def _claim_one(store: Store) -> Delivery:
    batch = await store.write(lambda tx: outbox.claim(tx, "s", 1, 30, "me"))
    assert len(batch) == 1
    return batch[0]


async def _settle(store: Store, delivery: Delivery, outcome: Exception | None) -> None:
    await store.write(lambda tx: settle(tx, POLICY, [delivery], [outcome]))


async def test_settle_mixed_batch(store: Store, clock: FakeClock) -> None:
    await _enqueue_cases(store, 3)
    batch = await store.write(lambda tx: outbox.claim(tx, "s", 3, 30, "me"))
    outcomes: list[Exception | None] = [
        None, RetriableSinkError("HTTP 503"), PermanentSinkError("HTTP 422 缺少字段"),
    ]
    await store.write(lambda tx: settle(tx, POLICY, batch, outcomes))
    rows = [await store.read(lambda tx, d=d: _outbox_row(tx, d.outbox_id)) for d in batch]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("delivered", 1, None), ("pending", 1, "HTTP 503"), ("dead", 1, "HTTP 422 缺少字段"),
    ]
    assert clock.now + 0.8 <= rows[1][2] <= clock.now + 1.2


async def test_settle_retries_with_growing_delays_then_dead(
    store: Store, clock: FakeClock
) -> None:
    await _enqueue_cases(store, 1)
    delays = []
    for attempt in range(1, POLICY.max_attempts):
        delivery = await _claim_one(store)
        assert delivery.attempts == attempt - 1
        await _settle(store, delivery, RetriableSinkError(f"HTTP 503 #{attempt}"))
        state, attempts, due, error = await store.read(
            lambda tx, oid=delivery.outbox_id: _outbox_row(tx, oid)
        )
        assert (state, attempts, error) == ("pending", attempt, f"HTTP 503 #{attempt}")
        delays.append(due - clock.now)
        clock.advance(due - clock.now + 0.001)
    # base * 2**k with ±20 % jitter: the ranges do not overlap, so each wait is longer
    for k, delay in enumerate(delays):
        assert 0.8 * 2**k <= delay <= 1.2 * 2**k
    assert delays == sorted(delays)

    delivery = await _claim_one(store)
    await _settle(store, delivery, RetriableSinkError("HTTP 503 last"))
    dead = await store.read(outbox.list_dead)
    assert [(d.attempts, d.last_error) for d in dead] == [(POLICY.max_attempts, "HTTP 503 last")]


async def test_settle_dead_letters_when_too_old(store: Store, clock: FakeClock) -> None:
    await _enqueue_cases(store, 2)
    young, old = await store.write(lambda tx: outbox.claim(tx, "s", 2, 30, "me"))
    clock.advance(POLICY.max_age_s - 1)
    await _settle(store, young, RetriableSinkError("timeout"))
    assert (await store.read(lambda tx: _outbox_row(tx, young.outbox_id)))[0] == "pending"
    clock.advance(1)
    await _settle(store, old, RetriableSinkError("timeout"))
    state, attempts, _, error = await store.read(lambda tx: _outbox_row(tx, old.outbox_id))
    assert (state, attempts, error) == ("dead", 1, "timeout")


async def test_settle_permanent_error_is_dead_at_once(store: Store, clock: FakeClock) -> None:
    await _enqueue_cases(store, 1)
    delivery = await _claim_one(store)
    await _settle(store, delivery, PermanentSinkError("HTTP 400"))
    clock.advance(3600)
    assert await store.write(lambda tx: outbox.claim(tx, "s", 10, 30, "me")) == []
    assert [d.last_error for d in await store.read(outbox.list_dead)] == ["HTTP 400"]


# -- quarantine ------------------------------------------------------------------------


async def test_quarantine_add_list_resolve(store: Store) -> None:
    detail = {"error": "KeyError('内容')", "fields": ["content"]}

    def fill(tx: Tx) -> list[int]:
        raw_id = journal.insert_raw(tx, make_raw(), journal.QUARANTINED)
        return [
            quarantine.add(tx, "hotline", raw_id, "normalizer_error", detail),
            quarantine.add(tx, "mail", None, "rejected"),
            quarantine.add(tx, "hotline", raw_id, "rejected", [{"field": "body"}]),
        ]

    ids = await store.write(fill)
    entries = await store.read(quarantine.list_open)
    assert [e.id for e in entries] == ids
    assert (entries[0].source, entries[0].reason, entries[0].detail) == (
        "hotline", "normalizer_error", detail,
    )
    assert entries[1].raw_id is None and entries[1].detail is None
    assert await store.read(quarantine.count_open) == 3
    only = await store.read(lambda tx: quarantine.list_open(tx, [ids[2]]))
    assert [e.id for e in only] == [ids[2]]

    await store.write(lambda tx: quarantine.resolve(tx, ids[0], "new CY-1"))
    assert [e.id for e in await store.read(quarantine.list_open)] == ids[1:]
    assert await store.read(lambda tx: quarantine.list_open(tx, [ids[0]])) == []
    assert await store.read(quarantine.count_open) == 2


async def test_list_open_finds_a_wanted_id_past_the_limit(store: Store) -> None:
    ids = await store.write(
        lambda tx: [quarantine.add(tx, "mail", None, "rejected") for _ in range(3)]
    )
    found = await store.read(lambda tx: quarantine.list_open(tx, [ids[2]], limit=2))
    assert [e.id for e in found] == [ids[2]]


# -- checkpoints and leases ------------------------------------------------------------


async def test_checkpoint_round_trip_and_overwrite(store: Store) -> None:
    assert await store.read(lambda tx: checkpoints.get(tx, "feed")) is None
    first = {"etag": 'W/"abc"', "seen": ["guid-1", "帖子-2"], "at": 1.5}
    await store.write(lambda tx: checkpoints.put(tx, "feed", first))
    await store.write(lambda tx: checkpoints.put(tx, "mail", 42))
    assert await store.read(lambda tx: checkpoints.get(tx, "feed")) == first
    await store.write(lambda tx: checkpoints.put(tx, "feed", {"uidnext": 7}))
    assert await store.read(lambda tx: checkpoints.get(tx, "feed")) == {"uidnext": 7}
    assert await store.read(lambda tx: checkpoints.get(tx, "mail")) == 42


async def test_lease_acquire_renew_expire_release(store: Store, clock: FakeClock) -> None:
    async def acquire(owner: str) -> bool:
        return await store.write(lambda tx: checkpoints.acquire_lease(tx, "poll:feed", owner, 30))

    async def release(owner: str) -> None:
        await store.write(lambda tx: checkpoints.release_lease(tx, "poll:feed", owner))

    assert await acquire("a")
    clock.advance(20)
    assert await acquire("a")  # renewed: now held until +50
    assert not await acquire("b")
    clock.advance(29)
    assert not await acquire("b")  # the renewal counts, not the first grant
    clock.advance(2)
    assert await acquire("b")  # expired: taken over
    assert not await acquire("a")
    await release("a")  # not the owner: nothing happens
    assert not await acquire("a")
    await release("b")
    assert await acquire("a")
    other = await store.write(lambda tx: checkpoints.acquire_lease(tx, "poll:mail", "b", 30))
    assert other  # leases are per name
