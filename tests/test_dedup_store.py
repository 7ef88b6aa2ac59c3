"""Dedup decisions against the store, on both engines: exact duplicates, repeats across
channels, related cases and their clusters, hot topics, the window and pruning, and two
replicas (two stores on one database) linking each other's cases."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.dedup.deduplicator import Deduplicator
from gateway.intake.pipeline import Intake, IntakeResult, SourceBinding
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import Complaint, ComplaintDraft, Location, RawRecord, Reporter
from gateway.store import Store, Tx, cases, journal
from gateway.store import dedup_index as idx
from gateway.support.config import DedupConfig
from gateway.support.keyed_ids import IdentifierKeys, key_from_text
from tests.conftest import TEST_PRIVACY, started_store

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2024, 5, 6, 1, 0, tzinfo=UTC)
NOISE = "城阳区正阳路工地每天夜里施工到凌晨2点，噪音很大，老人孩子都睡不好觉，请相关部门尽快处理。"
NOISE_AGAIN = ("您好！正阳路那个工地夜里施工到凌晨2点，噪音很大，老人孩子都睡不好觉，"
               "请相关部门尽快处理，谢谢。")
LAMP = "春阳路小学门口的路灯已经坏了一个多月，晚上接孩子放学路上很黑，存在安全隐患。"
TREES = "河滨公园东门附近有三棵大树被人砍伐，树桩还在，希望园林部门调查是否有审批手续。"


def json_draft(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    """The test channels' format: a JSON object with the draft's fields."""
    data: dict[str, Any] = json.loads(raw.payload)
    return ComplaintDraft(
        channel=raw.channel, source=ctx.source, source_ref=raw.source_ref,
        received_at=raw.received_at, reported_at=raw.received_at,
        reporter=Reporter(phone=data.get("phone"), email=data.get("email"),
                          handle=data.get("handle"), anonymous=data.get("anonymous", False)),
        subject=data.get("subject", ""), body=data["body"],
        location=Location(address=data["address"]) if data.get("address") else None,
    )


# Replicas share one identifier key (as privacy.identifier_key makes them).
TEST_KEYS = IdentifierKeys(key_from_text(TEST_PRIVACY["identifier_key"]))
CHANNELS = {"hotline": "phone", "mailbox": "email", "web": "web"}


def make_intake(store: Store, config: DedupConfig | None = None,
                event_sinks: tuple[str, ...] = ()) -> Intake:
    bindings = {s: SourceBinding(json_draft, NormalizerContext(s, SHANGHAI)) for s in CHANNELS}
    return Intake(store, region="CY", timezone=SHANGHAI, sinks=["platform"],
                  bindings=bindings, dedup=Deduplicator(config, event_sinks, TEST_KEYS))


_refs = iter(range(1, 1_000_000))


def raw(source: str, body: str, at: datetime = T0, **fields: Any) -> RawRecord:
    payload = json.dumps({"body": body, **fields}, ensure_ascii=False).encode()
    return RawRecord(channel=CHANNELS[source], source=source,  # type: ignore[arg-type]
                     source_ref=f"{source}-{next(_refs)}", payload=payload,
                     content_type="application/json", received_at=at)


async def document(store: Store, code: str | None) -> Complaint:
    row = await store.read(lambda tx: cases.get_by_code(tx, code or ""))
    assert row is not None
    return Complaint.model_validate_json(row.document)


async def outbox_kinds(store: Store) -> list[tuple[str, str, str | None]]:
    rows = await store.read(lambda tx: tx.fetchall(
        "SELECT sink, kind, payload FROM outbox ORDER BY id"))
    return [(r[0], r[1], r[2]) for r in rows]


# -- exact duplicates and repeats --------------------------------------------------------


async def test_phone_then_email_from_the_same_person_is_a_repeat(store: Store) -> None:
    intake = make_intake(store)
    call = await intake.submit(raw("hotline", NOISE, phone="+8613800138000"))
    mail = await intake.submit(raw("mailbox", NOISE_AGAIN, at=T0 + timedelta(days=3),
                                   email="Huang.Li@Example.COM", phone="+8613800138000"))
    assert call.outcome == "new"
    assert (mail.outcome, mail.repeat_of, mail.cluster_id) == ("repeat", call.case_code, None)
    assert mail.as_json() == {"outcome": "repeat", "case_code": mail.case_code,
                              "repeat_of": call.case_code}
    decided = (await document(store, mail.case_code)).dedup
    assert (decided.kind, decided.repeat_of) == ("repeat", call.case_code)
    assert decided.similarity is not None and 0.4 <= decided.similarity < 1
    link = await store.read(lambda tx: idx.get_link(tx, _case_id(tx, mail.case_code)))
    assert link is not None
    assert (link.matched_code, link.shared_key) == (call.case_code, "tel:+86138****8000")
    # The e-mail address is a key too, compared lower-cased: a later mail without the phone.
    again = await intake.submit(raw("mailbox", NOISE, at=T0 + timedelta(days=9),
                                    email="huang.li@example.com"))
    assert (again.outcome, again.repeat_of) == ("repeat", call.case_code)


def _case_id(tx: Tx, code: str | None) -> int:
    row = cases.get_by_code(tx, code or "")
    assert row is not None
    return row.id


async def test_exact_duplicate_is_answered_as_a_replay(store: Store) -> None:
    intake = make_intake(store)
    first = await intake.submit(raw("web", NOISE, phone="+8613800138000", subject="噪音"))
    # Width, punctuation, spacing and a greeting differ; the normalized content does not.
    variant = "您好！" + NOISE.replace("2", "２").replace("，", " , ") + "\u3000谢谢"
    twice = await intake.submit(raw("web", variant, at=T0 + timedelta(hours=2),
                                    phone="+8613800138000", subject="噪音！"))
    assert (twice.outcome, twice.case_code) == ("replay", first.case_code)
    assert twice.as_json() == {"outcome": "replay", "case_code": first.case_code}
    assert await store.read(cases.count) == 1
    entry = await store.read(lambda tx: journal.get(tx, twice.raw_id))
    assert entry is not None and entry.status == journal.REPLAY
    assert entry.detail == {"case_code": first.case_code, "exact_duplicate": True}
    # Its own ref now points at the case: a retry of the duplicate is a plain replay.
    retry = await intake.submit(entry.record)
    assert (retry.outcome, retry.case_code) == ("replay", first.case_code)
    # After the short window the same content is a repeat (a new case), not a replay.
    later = await intake.submit(raw("web", NOISE, at=T0 + timedelta(days=2),
                                    phone="+8613800138000", subject="噪音"))
    assert (later.outcome, later.repeat_of) == ("repeat", first.case_code)
    # Another reporter with the same text is never a duplicate.
    other = await intake.submit(raw("web", NOISE, at=T0 + timedelta(hours=3),
                                    phone="+8613900139000", subject="噪音"))
    assert other.outcome == "related"


async def test_repeat_links_to_the_earliest_case_and_the_window_ends_it(store: Store) -> None:
    intake = make_intake(store)
    me = {"phone": "+8613800138000"}
    first = await intake.submit(raw("hotline", NOISE, **me))
    second = await intake.submit(raw("web", NOISE_AGAIN, at=T0 + timedelta(days=1), **me))
    third = await intake.submit(raw("mailbox", NOISE_AGAIN + "已经一周了。",
                                    at=T0 + timedelta(days=5), **me))
    other_matter = await intake.submit(raw("web", LAMP, at=T0 + timedelta(days=6), **me))
    after_window = await intake.submit(raw("web", NOISE, at=T0 + timedelta(days=45), **me))
    assert (second.outcome, second.repeat_of) == ("repeat", first.case_code)
    assert (third.outcome, third.repeat_of) == ("repeat", first.case_code)
    assert other_matter.outcome == "new"
    assert after_window.outcome == "new"


async def test_short_texts_repeat_for_one_reporter_but_never_relate(store: Store) -> None:
    intake = make_intake(store)
    a = await intake.submit(raw("hotline", "路灯不亮", phone="+8613800138000"))
    b = await intake.submit(raw("hotline", "路灯不亮。", at=T0 + timedelta(days=2),
                                phone="+8613800138000"))
    c = await intake.submit(raw("hotline", "路灯不亮", phone="+8613900139000"))
    assert a.outcome == "new"
    assert (b.outcome, b.repeat_of) == ("repeat", a.case_code)
    assert c.outcome == "new"  # four characters say too little to link two people


# -- related cases, clusters, hot topics ---------------------------------------------------


async def test_related_cases_share_a_cluster_and_the_first_is_stamped(store: Store) -> None:
    intake = make_intake(store)
    first = await intake.submit(raw("web", NOISE, phone="+8613800000001"))
    second = await intake.submit(raw("hotline", NOISE_AGAIN, at=T0 + timedelta(hours=1),
                                     phone="+8613800000002"))
    third = await intake.submit(raw("mailbox", NOISE + "我们小区很多人都有意见。",
                                    at=T0 + timedelta(hours=2), email="wang@example.com"))
    unrelated = await intake.submit(raw("web", TREES, phone="+8613800000004"))
    cluster = f"CL-{first.case_code}"
    assert (second.outcome, second.cluster_id) == ("related", cluster)
    assert (third.outcome, third.cluster_id) == ("related", cluster)
    assert unrelated.outcome == "new" and unrelated.cluster_id is None
    assert second.as_json() == {"outcome": "related", "case_code": second.case_code,
                                "cluster_id": cluster}
    stamped = (await document(store, first.case_code)).dedup
    assert (stamped.kind, stamped.cluster_id) == ("new", cluster)
    kinds = [(sink, kind) for sink, kind, _ in await outbox_kinds(store)]
    assert kinds == [("platform", "case"), ("platform", "case"), ("platform", "update"),
                     ("platform", "case"), ("platform", "case")]
    found = await store.read(lambda tx: idx.get_cluster(tx, cluster))
    assert found is not None
    assert (found.size, found.first_code, found.latest_code) == (3, first.case_code,
                                                                 third.case_code)
    assert found.snippet == NOISE
    # A repeat by one of them joins the cluster too.
    repeat = await intake.submit(raw("hotline", NOISE_AGAIN, at=T0 + timedelta(days=2),
                                     phone="+8613800000002"))
    assert (repeat.outcome, repeat.repeat_of, repeat.cluster_id) == (
        "repeat", second.case_code, cluster)


async def test_hot_topic_event_goes_to_event_sinks_once(store: Store) -> None:
    config = DedupConfig(hot_topic_cases=3, hot_topic_hours=6)
    intake = make_intake(store, config, event_sinks=("events",))
    results = [await intake.submit(raw("web", NOISE, at=T0 + timedelta(hours=2 * i),
                                       phone=f"+86138000000{i:02d}")) for i in range(5)]
    events = [(sink, json.loads(payload or "")) for sink, kind, payload
              in await outbox_kinds(store) if kind == "event"]
    assert len(events) == 1
    sink, payload = events[0]
    assert sink == "events"
    assert payload == {
        "type": "hot_topic", "cluster_id": f"CL-{results[0].case_code}", "count": 3,
        "window_hours": 6.0, "first_case_code": results[0].case_code,
        "latest_case_code": results[2].case_code, "representative_text": NOISE,
        "detected_at": (T0 + timedelta(hours=4)).isoformat(),
    }
    assert await store.read(idx.hot_topic_events_total) == 1
    # Once the period is over, a new burst raises it again.
    late = T0 + timedelta(hours=30)
    for i in range(3):
        await intake.submit(raw("web", NOISE, at=late + timedelta(minutes=i),
                                phone=f"+86139000000{i:02d}"))
    assert await store.read(idx.hot_topic_events_total) == 2
    top = await store.read(lambda tx: idx.top_clusters(tx, (late - timedelta(hours=1))
                                                       .timestamp()))
    assert [(c.cluster_id, c.recent, c.size, c.hot_events) for c in top] == [
        (f"CL-{results[0].case_code}", 3, 8, 2)]


async def test_no_event_sink_no_event_but_counted(store: Store) -> None:
    intake = make_intake(store, DedupConfig(hot_topic_cases=2))
    for i in range(2):
        await intake.submit(raw("web", LAMP, phone=f"+86138000000{i:02d}"))
    assert [k for _, k, _ in await outbox_kinds(store)] == ["case", "case", "update"]
    assert await store.read(idx.hot_topic_events_total) == 1


# -- window, pruning, settings ------------------------------------------------------------


async def test_prune_drops_entries_keys_and_clusters_past_the_window(store: Store) -> None:
    intake = make_intake(store, DedupConfig(prune_every=1000))
    old = datetime.now(UTC) - timedelta(days=40)
    await intake.submit(raw("web", NOISE, at=old, phone="+8613800000001"))
    await intake.submit(raw("web", NOISE, at=old, phone="+8613800000002"))
    recent = await intake.submit(raw("web", LAMP, at=datetime.now(UTC), phone="+8613800000003"))

    def counts(tx: Tx) -> tuple[int, ...]:
        return tuple(int(tx.fetchone(f"SELECT COUNT(*) FROM {t}")[0]) for t in (
            "dedup_entries", "dedup_bands", "dedup_reporters", "dedup_clusters"))

    assert await store.read(counts) == (3, 60, 3, 1)
    dropped = await store.write(lambda tx: intake.dedup.prune(tx, time.time()))
    assert dropped == 2
    assert await store.read(counts) == (1, 20, 1, 0)
    assert (await store.read(lambda tx: idx.get_link(tx, _case_id(tx, recent.case_code))))


async def test_intake_prunes_every_n_commits(store: Store) -> None:
    intake = make_intake(store, DedupConfig(prune_every=3))
    old = datetime.now(UTC) - timedelta(days=60)
    for i, body in enumerate((NOISE, LAMP, TREES)):
        await intake.submit(raw("web", body, at=old, phone=f"+861380000000{i}"))
    # The third commit pruned: what it filed was already older than the window.
    assert await store.read(idx.count_entries) == 0


async def test_disabled_dedup_files_everything_as_new(store: Store) -> None:
    intake = make_intake(store, DedupConfig(enabled=False))
    results = [await intake.submit(raw("web", NOISE, phone="+8613800138000")) for _ in range(2)]
    assert [r.outcome for r in results] == ["new", "new"]
    assert await store.read(idx.count_entries) == 0


async def test_file_case_without_fingerprint_still_links(store: Store) -> None:
    """Adapters with their own flow (joined phone calls) call ``file_case`` directly."""
    intake = make_intake(store)
    first = await intake.submit(raw("web", NOISE, phone="+8613800138000"))
    draft = json_draft(raw("hotline", NOISE_AGAIN, phone="+8613800138000"),
                       NormalizerContext("hotline", SHANGHAI))

    def file(tx: Tx) -> str:
        raw_id = journal.insert_raw(tx, raw("hotline", "x"), journal.ACCEPTED)
        return intake.file_case(tx, raw_id, draft, ["ref:call-1"]).case_code

    code = await store.write(file)
    decided = (await document(store, code)).dedup
    assert (decided.kind, decided.repeat_of) == ("repeat", first.case_code)


# -- two replicas on one database -----------------------------------------------------------


async def test_two_replicas_link_each_others_cases(store: Store, store_url: str) -> None:
    async with started_store(store_url) as other:
        a, b = make_intake(store), make_intake(other)
        first = await a.submit(raw("web", NOISE, phone="+8613800000001"))
        repeat = await b.submit(raw("hotline", NOISE_AGAIN, at=T0 + timedelta(hours=1),
                                    phone="+8613800000001"))
        related = await b.submit(raw("web", NOISE, at=T0 + timedelta(hours=2),
                                     phone="+8613800000002"))
        back = await a.submit(raw("mailbox", NOISE_AGAIN, at=T0 + timedelta(hours=3),
                                  email="zhao@example.com"))
        # At the same time on both: every one lands in the one cluster, none is "new".
        burst: list[IntakeResult] = list(await asyncio.gather(*(
            (a if i % 2 else b).submit(raw("web", NOISE + f"第{i}户", at=T0 + timedelta(
                hours=4), phone=f"+86139000000{i:02d}")) for i in range(10))))
    cluster = f"CL-{first.case_code}"
    assert (repeat.outcome, repeat.repeat_of) == ("repeat", first.case_code)
    assert (related.outcome, related.cluster_id) == ("related", cluster)
    assert (back.outcome, back.cluster_id) == ("related", cluster)
    assert {(r.outcome, r.cluster_id) for r in burst} == {("related", cluster)}
    found = await store.read(lambda tx: idx.get_cluster(tx, cluster))
    assert found is not None and found.size == 13
