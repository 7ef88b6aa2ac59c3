"""The phone formats as pure functions: each encoding, time zones, configurable notes
variables, out-of-order joining, and the dry run through ``minsheng normalize``."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from adapters.cdr_webhook.auth import twilio_signature
from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import RawRecord
from normalizers.hotline import call_notes, freeswitch_json, generic_json, twilio, zammad_cti
from normalizers.hotline.call_state import CallState
from tests.fixtures.cdr import (
    FIXTURES,
    freeswitch_base64,
    freeswitch_form,
    lines,
    read,
    sign_twilio,
    with_variables,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 5, 6, 3, 0, tzinfo=UTC)


def raw(payload: bytes, content_type: str = "application/json", at: datetime = NOW,
        **metadata: Any) -> RawRecord:
    return RawRecord(channel="phone", source="hotline", source_ref="r", payload=payload,
                     content_type=content_type, received_at=at, metadata=metadata)


def ctx(tz: ZoneInfo = SHANGHAI, **options: Any) -> NormalizerContext:
    return NormalizerContext("hotline", tz, options)


def rejected(fn: Any, record: RawRecord, context: NormalizerContext | None = None) -> set[
        tuple[str, str]]:
    with pytest.raises(Rejected) as caught:
        fn(record, context or ctx())
    return {(e.field, e.code) for e in caught.value.errors}


# -- FreeSWITCH ------------------------------------------------------------------------


@pytest.mark.parametrize("encode", ["json", "form", "base64", "base64-as-form"])
def test_freeswitch_encodings_read_the_same(encode: str) -> None:
    document = read("freeswitch_answered.json")
    body, content_type = {
        "json": (document, "application/json"),
        "form": (freeswitch_form(document), "application/x-www-form-urlencoded"),
        "base64": (freeswitch_base64(document), "application/x-www-form-base64-encoded"),
        # a proxy that relabels the body: base64 read as a form, "+" turned into " "
        "base64-as-form": (freeswitch_base64(document).replace(b"+", b" "),
                           "application/x-www-form-urlencoded"),
    }[encode]
    event = freeswitch_json.parse(raw(body, content_type), ctx())
    assert event.call_id == "5b7f0c8e-1d2a-4a6b-8c3d-7e9f0a1b2c3d"
    assert event.fields["started_at"] == datetime(2024, 5, 6, 1, 30, 2, tzinfo=UTC)
    assert event.fields["caller"] == "+8613905328866"
    assert event.fields["agent"] == "1024@default"
    assert event.notes is not None and event.notes.subject == "小区路灯不亮"  # URL-decoded
    assert event.final and event.ignore is None


def test_freeswitch_stamps_are_read_in_the_configured_zone() -> None:
    record = raw(read("freeswitch_answered.json"))
    utc = freeswitch_json.normalize(record, ctx(ZoneInfo("UTC"))).call
    local = freeswitch_json.normalize(record, ctx(SHANGHAI)).call
    assert utc is not None and local is not None
    assert utc.started_at == datetime(2024, 5, 6, 9, 30, 2, tzinfo=UTC)
    assert local.started_at == utc.started_at - timedelta(hours=8)
    assert (local.ring_seconds, local.talk_seconds) == (11, 388)


def test_freeswitch_custom_notes_variables_and_agent_answer() -> None:
    body = with_variables("freeswitch_answered_no_notes.json", gd_title="井盖缺失",
                          gd_text="路口井盖缺失，存在安全隐患。", gd_addr="黑龙江路 5 号")
    options = {"freeswitch": {
        "notes_variables": {"subject": "gd_title", "content": "gd_text", "address": "gd_addr"},
        "agent_answer_variable": "cc_queue_answered_epoch"}}
    draft = freeswitch_json.normalize(raw(body), ctx(**options))
    assert draft.subject == "井盖缺失"
    assert draft.location is not None and draft.location.address == "黑龙江路 5 号"
    assert draft.call is not None and draft.call.ring_seconds == 11
    ivr_only = with_variables("freeswitch_answered_no_notes.json", cc_queue_answered_epoch="")
    call = freeswitch_json.normalize(raw(ivr_only), ctx(**options)).call
    assert call is not None and call.disposition == "abandoned" and call.answered_at is None


def test_freeswitch_missed_b_leg_and_what_a_cdr_without_notes_yields() -> None:
    missed = freeswitch_json.normalize(raw(read("freeswitch_missed.json")), ctx())
    assert missed.tags == ["callback", "abandoned"]
    assert missed.reporter.phone == "+8613905328866"
    pending = freeswitch_json.normalize(raw(read("freeswitch_answered_no_notes.json")), ctx())
    assert pending.tags == ["notes_pending"] and pending.subject.startswith("来电待补")
    b_leg = freeswitch_json.parse(raw(read("freeswitch_b_leg.json")), ctx())
    assert b_leg.ignore == "b_leg"


def test_freeswitch_bad_bodies() -> None:
    form = "application/x-www-form-urlencoded"
    assert rejected(freeswitch_json.parse, raw(b"cdr=%%%not-json", form)) == {
        ("cdr", "not_base64")}
    assert rejected(freeswitch_json.parse, raw(b"hello=1", form)) == {("cdr", "required")}
    assert rejected(freeswitch_json.parse, raw(b'{"variables": 3}')) == {
        ("variables", "required")}
    no_uuid = with_variables("freeswitch_answered.json", uuid="", call_uuid="")
    document = json.loads(no_uuid)
    document["callflow"][0]["caller_profile"]["uuid"] = ""
    assert ("variables.uuid", "required") in rejected(
        freeswitch_json.parse, raw(json.dumps(document).encode()))
    backwards = with_variables("freeswitch_answered.json", end_stamp="2024-05-06 09:29:00")
    assert ("variables.end_stamp", "ended_before_started") in rejected(
        freeswitch_json.parse, raw(backwards))


# -- Zammad CTI --------------------------------------------------------------------------


def zammad_events() -> list[RawRecord]:
    return [raw(line.encode(), at=NOW + timedelta(seconds=10 * i))
            for i, line in enumerate(lines("zammad_answered.jsonl"))]


def test_zammad_events_join_the_same_in_any_order_and_with_duplicates() -> None:
    records = zammad_events()
    outcomes = set()
    for order in itertools.permutations([*records, records[0], records[2]]):
        state = CallState.start("x", NOW)
        for record in order:
            state = state.merge(zammad_cti.parse(record, ctx()), record.received_at)
        info = state.call_info()
        outcomes.add((info.agent, info.disposition, state.status, info.caller,
                      info.started_at is not None, info.ended_at is not None))
    assert outcomes == {("坐席 1024", "answered", "ended", "+8613905321111", True, True)}
    in_order = CallState.start("x", NOW)
    for record in records:
        in_order = in_order.merge(zammad_cti.parse(record, ctx()), record.received_at)
    assert (in_order.call_info().ring_seconds, in_order.call_info().talk_seconds) == (10, 10)


def test_zammad_form_encoded_missed_call_and_bad_events() -> None:
    form = "application/x-www-form-urlencoded"
    new_call, hangup = (raw(line.encode(), form) for line in lines("zammad_missed.form.txt"))
    state = CallState.start("x", NOW)
    for record in (hangup, new_call):
        state = state.merge(zammad_cti.parse(record, ctx()), NOW)
    assert (state.status, state.disposition) == ("missed", "abandoned")
    assert rejected(zammad_cti.parse, raw(b"event=ring&callId=1", form)) == {
        ("event", "unknown_event")}
    assert rejected(zammad_cti.parse, raw(b'{"event": "answer"}')) == {("callId", "required")}
    assert rejected(zammad_cti.parse, raw(b"not json at all", "application/json")) == {
        ("body", "not_json")}


# -- Twilio ------------------------------------------------------------------------------


def test_twilio_signature_matches_twilios_documented_example() -> None:
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675310"),
              ("Digits", "1234"), ("From", "+14158675310"), ("To", "+18005551212")]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "GvWf1cFY/Q7PnoempGyD5oXAezc="
    assert sign_twilio("12345", url, params) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


def test_twilio_callbacks_ordered_by_sequence_number() -> None:
    form = "application/x-www-form-urlencoded"
    records = [raw(line.encode(), form) for line in lines("twilio_answered.form.txt")]
    for order in itertools.permutations(records):
        state = CallState.start("x", NOW)
        for record in order:
            state = state.merge(twilio.parse(record, ctx()), NOW)
        info = state.call_info()
        assert (info.ring_seconds, info.talk_seconds, info.disposition) == (12, 270, "answered")
        assert info.recording_ref is not None and info.recording_ref.endswith("eeff")
    newer = records[2].payload.replace(b"SequenceNumber=2", b"SequenceNumber=3").replace(
        b"eeff", b"ffff")
    for order in ([records[2], raw(newer, form)], [raw(newer, form), records[2]]):
        state = CallState.start("x", NOW)
        for record in order:
            state = state.merge(twilio.parse(record, ctx()), NOW)
        assert str(state.call_info().recording_ref).endswith("ffff")  # sequence 3 wins
    completed_only = twilio.normalize(records[2], ctx())
    assert completed_only.call is not None and completed_only.call.ring_seconds is None
    assert completed_only.call.answered_at == datetime(2024, 5, 6, 2, 15, 12, tzinfo=UTC)
    telnyx = {"CallSid": "v2:abc", "CallStatus": "no-answer", "From": "+8613905320000",
              "Timestamp": "2024-05-06 02:51:18.731479Z", "SequenceNumber": "3"}
    missed = twilio.normalize(raw(json.dumps(telnyx).encode()), ctx())
    assert missed.call is not None and missed.call.disposition == "no_answer"
    assert missed.tags == ["callback", "no_answer"]
    assert rejected(twilio.parse, raw(urlencode({"CallSid": "CA1", "CallStatus": "ringing-ish"})
                                      .encode(), form)) == {("CallStatus", "unknown_status")}


# -- generic and notes -------------------------------------------------------------------


def test_generic_disposition_must_agree_with_the_times() -> None:
    record = json.loads(read("generic_answered.json"))
    record.pop("answered_at")
    assert rejected(generic_json.parse, raw(json.dumps(record).encode())) == {
        ("answered_at", "required")}
    record = json.loads(read("generic_missed.json")) | {"answered_at": "2024-05-06 10:05:10"}
    assert rejected(generic_json.parse, raw(json.dumps(record).encode())) == {
        ("disposition", "contradicts_answered_at")}


def test_call_notes_take_the_call_id_from_the_path_or_the_body() -> None:
    notes = read("notes.json")
    from_path = call_notes.parse(raw(notes, call_id="c-7"), ctx())
    assert from_path.call_id == "c-7" and from_path.notes is not None
    anonymous = json.dumps({"call_id": "c-8", "content": "匿名反映", "anonymous": "是"}).encode()
    draft = call_notes.normalize(raw(anonymous), ctx())
    assert draft.reporter.anonymous and draft.reporter.phone is None
    assert draft.subject == "匿名反映" and draft.call is not None and draft.call.call_id == "c-8"


# -- the dry run -------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name", "content_type"), [
    ("freeswitch_json", "freeswitch_answered.json", None),
    ("generic_json", "generic_answered.json", None),
    ("call_notes", "notes.json", None),
    ("zammad_cti", "zammad_missed.form.txt", "application/x-www-form-urlencoded"),
    ("twilio", "twilio_answered.form.txt", "application/x-www-form-urlencoded"),
])
def test_minsheng_normalize_dry_run(fmt: str, name: str, content_type: str | None,
                                    tmp_path: Path) -> None:
    sample = tmp_path / name
    first_line = read(name).splitlines()[0] if name.endswith(".txt") else read(name)
    sample.write_bytes(first_line)
    if fmt == "call_notes":
        sample.write_text(json.dumps({**json.loads(read(name)), "call_id": "c-1"}))
    args = [sys.executable, "-m", "gateway", "normalize", "--format", fmt, str(sample)]
    if content_type:
        args += ["--content-type", content_type]
    done = subprocess.run(args, capture_output=True, text=True, cwd=FIXTURES.parents[2],
                          timeout=60)
    assert done.returncode == 0, done.stderr
    draft = json.loads(done.stdout)
    assert draft["channel"] == "phone" and draft["call"]["call_id"]


def test_minsheng_normalize_dry_run_rejects(tmp_path: Path) -> None:
    sample = tmp_path / "bad.json"
    sample.write_bytes(read("generic_ended_before_started.json"))
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "normalize", "--format", "generic_json", str(sample)],
        capture_output=True, text=True, cwd=FIXTURES.parents[2], timeout=60)
    assert done.returncode == 1
    assert json.loads(done.stdout)["rejected"][0]["field"] == "ended_at"
