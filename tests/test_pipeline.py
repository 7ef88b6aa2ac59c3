"""The intake pipeline on both engines: new, replays, rejections, quarantine, reprocess."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.intake.pipeline import Intake, IntakeResult, SourceBinding
from gateway.intake.poller import Fetched
from gateway.model.casecode import parse_code
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import Complaint, ComplaintDraft, RawRecord
from gateway.server.app import build_intake
from gateway.store import Store, Tx, cases, journal, outbox, quarantine
from tests.conftest import gateway_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 01:30 in Shanghai on 2019-11-20, still the 19th in UTC: the code takes the local date.
RECEIVED = datetime(2019, 11, 19, 17, 30, tzinfo=UTC)
SUBMISSION = {
    "name": "黄女士", "phone": "13800138000", "subject": "共享单车乱停放",
    "content": "小区门口共享单车堆放严重，影响通行。", "address": "城阳区正阳路",
}


def web_raw(source_ref: str, key: str | None = None, **fields: Any) -> RawRecord:
    return RawRecord(
        channel="web", source="web", source_ref=source_ref,
        payload=json.dumps({**SUBMISSION, **fields}, ensure_ascii=False).encode(),
        content_type="application/json", received_at=RECEIVED,
        metadata={"remote": "127.0.0.1", "user_agent": "测试浏览器"}, idempotency_key=key,
    )


def text_raw(source_ref: str, body: str = "路灯不亮", source: str = "hotline",
             key: str | None = None) -> RawRecord:
    return RawRecord(
        channel="phone", source=source, source_ref=source_ref, payload=body.encode(),
        content_type="text/plain; charset=utf-8", received_at=RECEIVED, idempotency_key=key,
    )


def plain_text(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    """A minimal normalizer: the payload is the body."""
    return ComplaintDraft(
        channel=raw.channel, source=ctx.source, source_ref=raw.source_ref,
        received_at=raw.received_at, reported_at=raw.received_at, body=raw.payload.decode(),
    )


def broken(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    raise KeyError("content")  # a normalizer bug, not bad input


def text_intake(store: Store, sources: tuple[str, ...] = ("hotline",)) -> Intake:
    bindings = {s: SourceBinding(plain_text, NormalizerContext(s, SHANGHAI)) for s in sources}
    return Intake(store, region="CY", timezone=SHANGHAI, sinks=["platform", "file"],
                  bindings=bindings)


def count_rows(tx: Tx, table: str) -> int:
    return int(tx.fetchone(f"SELECT COUNT(*) FROM {table}")[0])


async def table_counts(store: Store) -> dict[str, int]:
    tables = ("cases", "outbox", "dedup_keys", "sequences", "quarantine", "raw_records")
    return await store.read(lambda tx: {t: count_rows(tx, t) for t in tables})


# -- new and replays -------------------------------------------------------------------


async def test_new_then_replay_by_ref_and_by_idempotency_key(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    intake = build_intake(gateway_config(tmp_path, store_url), store)
    woken: list[int] = []
    intake.on_enqueued = lambda: woken.append(1)

    first = await intake.submit(web_raw("web-1", key="k-1"))
    by_ref = await intake.submit(web_raw("web-1"))
    by_key = await intake.submit(web_raw("web-9", key="k-1"))
    other = await intake.submit(
        web_raw("web-2", key="k-2", content="小区路灯坏了一周，晚上出行不便。")
    )

    assert first.outcome == "new" and other.outcome == "new"
    assert first.case_code != other.case_code
    assert (by_ref.outcome, by_ref.case_code) == ("replay", first.case_code)
    assert (by_key.outcome, by_key.case_code) == ("replay", first.case_code)
    assert by_key.as_json() == {"outcome": "replay", "case_code": first.case_code}
    assert len({first.raw_id, by_ref.raw_id, by_key.raw_id, other.raw_id}) == 4
    assert woken == [1, 1]  # the forwarder is woken for new cases only
    assert intake.counts == {("web", "new"): 2, ("web", "replay"): 2}

    counts = await table_counts(store)
    assert (counts["cases"], counts["outbox"], counts["raw_records"]) == (2, 2, 4)
    assert await store.read(journal.count_by_status) == {"accepted": 2, "replay": 2}
    replay = await store.read(lambda tx: journal.get(tx, by_key.raw_id))
    assert replay is not None
    assert replay.status == journal.REPLAY
    assert replay.detail == {"case_code": first.case_code}
    assert replay.record.idempotency_key == "k-1"


async def test_replay_by_submission_id_in_the_form(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    intake = build_intake(gateway_config(tmp_path, store_url), store)
    first = await intake.submit(web_raw("web-1", submission_id="F-2019-0001"))
    again = await intake.submit(web_raw("web-2", submission_id="F-2019-0001"))
    assert first.outcome == "new"
    assert (again.outcome, again.case_code) == ("replay", first.case_code)


async def test_same_ref_in_another_source_is_a_new_case(store: Store) -> None:
    intake = text_intake(store, ("hotline", "hotline2"))
    first = await intake.submit(text_raw("call-1"))
    second = await intake.submit(text_raw("call-1", source="hotline2"))
    assert (first.outcome, second.outcome) == ("new", "new")
    assert first.case_code != second.case_code


async def test_stored_document_is_a_valid_complaint(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    config = gateway_config(tmp_path, store_url, sinks=[
        {"name": "platform", "kind": "jsonl", "path": str(tmp_path / "a.jsonl")},
        {"name": "file", "kind": "jsonl", "path": str(tmp_path / "b.jsonl")},
    ])
    intake = build_intake(config, store)
    raw = web_raw("web-1")
    result = await intake.submit(raw)
    assert result.outcome == "new" and result.case_code is not None

    parsed = parse_code(result.case_code, "CY")
    assert (parsed.day, parsed.channel, parsed.sequence) == (date(2019, 11, 20), "web", 1)
    row = await store.read(lambda tx: cases.get_by_code(tx, result.case_code or ""))
    assert row is not None
    complaint = Complaint.model_validate_json(row.document)
    assert complaint.case_code == result.case_code
    assert complaint.raw_ref == f"raw:{result.raw_id}"
    assert (complaint.channel, complaint.source, complaint.source_ref) == ("web", "web", "web-1")
    assert complaint.reporter.phone == "+8613800138000"
    assert complaint.body == SUBMISSION["content"]
    assert complaint.received_at == RECEIVED
    assert complaint.dedup.kind == "new"

    entry = await store.read(lambda tx: journal.get(tx, result.raw_id))
    assert entry is not None
    assert (entry.status, entry.record) == (journal.ACCEPTED, raw)

    for sink in ("platform", "file"):
        batch = await store.write(lambda tx, s=sink: outbox.claim(tx, s, 10, 30, "test"))
        assert [(d.case_code, d.body) for d in batch] == [(result.case_code, row.document)]


async def test_sequences_per_channel_and_local_day(store: Store) -> None:
    intake = text_intake(store)
    codes = [(await intake.submit(text_raw(f"c{i}"))).case_code for i in range(3)]
    next_day = replace(text_raw("late"), received_at=RECEIVED + timedelta(days=1))
    codes.append((await intake.submit(next_day)).case_code)
    parsed = [parse_code(c or "", "CY") for c in codes]
    assert [(p.day.day, p.channel, p.sequence) for p in parsed] == [
        (20, "phone", 1), (20, "phone", 2), (20, "phone", 3), (21, "phone", 1),
    ]


# -- rejections ------------------------------------------------------------------------


async def _assert_nothing_stored_but_journal(store: Store, quarantined: int) -> None:
    """Only the raw record (and the quarantine entry, if any): no case, key or number."""
    assert await table_counts(store) == {
        "cases": 0, "outbox": 0, "dedup_keys": 0, "sequences": 0, "quarantine": quarantined,
        "raw_records": 1,
    }


async def test_rejected_is_journaled_and_nothing_half_stored(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    intake = build_intake(gateway_config(tmp_path, store_url), store)
    raw = web_raw("web-1", content="  ", phone="12345")
    result = await intake.submit(raw)
    assert result.outcome == "rejected"
    assert result.case_code is None and result.quarantine_id is None
    assert {e.field for e in result.errors} == {"content", "phone"}

    await _assert_nothing_stored_but_journal(store, quarantined=0)
    rejected = await store.read(lambda tx: journal.latest(tx, journal.REJECTED))
    assert [e.id for e in rejected] == [result.raw_id]
    assert rejected[0].record == raw
    assert {d["field"] for d in rejected[0].detail} == {"content", "phone"}
    assert all(d["zh"] and d["en"] and d["reason"] for d in rejected[0].detail)

    fixed = await intake.submit(web_raw("web-1"))  # a rejection files no replay key
    assert fixed.outcome == "new"


async def test_rejected_pulled_item_goes_to_quarantine(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    intake = build_intake(gateway_config(tmp_path, store_url), store)
    result = await intake.submit(web_raw("web-1", content=""), quarantine_rejects=True)
    assert result.outcome == "rejected"
    assert result.quarantine_id is not None
    await _assert_nothing_stored_but_journal(store, quarantined=1)
    entries = await store.read(quarantine.list_open)
    assert [(e.id, e.source, e.raw_id, e.reason) for e in entries] == [
        (result.quarantine_id, "web", result.raw_id, "rejected"),
    ]
    assert [d["field"] for d in entries[0].detail] == ["content"]


@pytest.mark.parametrize(("body", "reported", "field"), [
    ("   ", RECEIVED, "body"),
    ("路灯不亮", RECEIVED + timedelta(hours=1), "reported_at"),
])
async def test_draft_breaking_the_standard_is_rejected(
    store: Store, body: str, reported: datetime, field: str
) -> None:
    def normalizer(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
        draft = plain_text(raw, ctx)
        return draft.model_copy(update={"body": body, "reported_at": reported})

    intake = text_intake(store)
    intake.bindings["hotline"].normalizer = normalizer
    result = await intake.submit(text_raw("call-1"))
    assert (result.outcome, [e.field for e in result.errors]) == ("rejected", [field])
    await _assert_nothing_stored_but_journal(store, quarantined=0)


# -- normalizer failures and reprocessing ----------------------------------------------


async def _quarantined(intake: Intake, raw: RawRecord) -> IntakeResult:
    result = await intake.submit(raw)
    assert result.outcome == "quarantined"
    assert result.quarantine_id is not None
    return result


async def test_normalizer_crash_quarantines_then_reprocess_creates_case(store: Store) -> None:
    intake = text_intake(store)
    intake.bindings["hotline"].normalizer = broken
    raw = text_raw("call-1", key="k-1")
    failed = await _quarantined(intake, raw)

    await _assert_nothing_stored_but_journal(store, quarantined=1)
    entry = await store.read(lambda tx: journal.get(tx, failed.raw_id))
    assert entry is not None
    assert (entry.status, entry.record) == (journal.QUARANTINED, raw)
    assert "KeyError" in entry.detail["error"] and "broken" in entry.detail["traceback"]
    [open_entry] = await store.read(quarantine.list_open)
    assert (open_entry.id, open_entry.raw_id, open_entry.reason) == (
        failed.quarantine_id, failed.raw_id, "normalizer_error",
    )

    intake.bindings["hotline"].normalizer = plain_text  # the fix is deployed
    fixed = await intake.reprocess(failed.quarantine_id or 0)
    assert fixed.outcome == "new" and fixed.case_code is not None
    parse_code(fixed.case_code, "CY")
    assert await store.read(quarantine.count_open) == 0
    row = await store.read(lambda tx: cases.get_by_code(tx, fixed.case_code or ""))
    assert row is not None
    ref = Complaint.model_validate_json(row.document).raw_ref
    source_row = await store.read(lambda tx: journal.get(tx, int(ref.removeprefix("raw:"))))
    assert source_row is not None and source_row.record == raw

    with pytest.raises(LookupError):
        await intake.reprocess(failed.quarantine_id or 0)  # resolved: nothing left to retry
    replay = await intake.submit(text_raw("call-9", key="k-1"))
    assert (replay.outcome, replay.case_code) == ("replay", fixed.case_code)


async def test_reprocess_of_rejected_item_after_config_fix(store: Store) -> None:
    intake = text_intake(store)
    result = await intake.submit(text_raw("call-1", body=" "), quarantine_rejects=True)
    assert result.outcome == "rejected" and result.quarantine_id is not None

    def padded(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
        return plain_text(raw, ctx).model_copy(update={"body": "（来电未留言）"})

    intake.bindings["hotline"].normalizer = padded
    fixed = await intake.reprocess(result.quarantine_id)
    assert fixed.outcome == "new"
    assert await store.read(quarantine.count_open) == 0


async def test_reprocess_unknown_entry_raises(store: Store) -> None:
    with pytest.raises(LookupError):
        await text_intake(store).reprocess(12345)


async def test_failed_reprocess_keeps_one_open_entry(store: Store) -> None:
    intake = text_intake(store)
    intake.bindings["hotline"].normalizer = broken
    failed = await _quarantined(intake, text_raw("call-1"))
    again = await intake.reprocess(failed.quarantine_id or 0)
    assert again.outcome == "quarantined"
    assert await store.read(quarantine.count_open) == 1


async def test_an_item_judged_for_relevance_is_normalized_once(store: Store) -> None:
    """A pulled web item is read by its normalizer to judge relevance; the intake takes
    that draft instead of normalizing the record again, and still validates it."""
    from adapters.opinion.web_common import judge
    from normalizers.opinion.relevance import Relevance

    calls: list[str] = []

    def counting(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
        calls.append(raw.source_ref)
        return plain_text(raw, ctx)

    intake = text_intake(store)
    intake.bindings["hotline"] = SourceBinding(counting, NormalizerContext("hotline", SHANGHAI))
    rules = Relevance(include=["路灯"])
    kept = await judge(intake, text_raw("lamp", "正阳路路灯不亮"), rules)
    dropped = await judge(intake, text_raw("ad", "广告：低价装修"), rules)
    assert isinstance(kept, Fetched) and kept.draft is not None
    assert not isinstance(dropped, Fetched) and not dropped.relevant
    assert kept.record is not None
    result = await intake.submit(kept.record, draft=kept.draft)
    assert result.outcome == "new"
    assert calls == ["lamp", "ad"]  # each read once, none again at intake
    invalid = kept.draft.model_copy(update={"body": ""})
    refused = await intake.submit(text_raw("lamp-2"), draft=invalid)
    assert refused.outcome == "rejected"  # a given draft is still validated
