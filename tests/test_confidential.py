"""Confidential cases (issue 18, item 4): every way the flag is set (the web mailbox's
field, call notes, a confidential rule), every output masked (sinks, the pull feed, the
case look-up, the status page's clusters, the weekly report) by scanning the serialized
output for the reporter's bytes, a ``full`` sink and ``api.confidential: full`` receiving
everything, and documents from before the flag still loading."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import Complaint, ComplaintDraft, RawRecord, complaint_json_schema
from gateway.reports.data import _fact
from gateway.routing.hints import RoutingHints
from gateway.routing.rules import load_rules
from gateway.server.app import Gateway
from gateway.support.confidential import mask_document, mask_json, masked_text_of
from gateway.support.routing_config import ClassifierConfig, DeadlinesConfig
from normalizers import web_form
from normalizers.hotline import call_notes, freeswitch_json, generic_json
from tests.conftest import base_url, gateway_config, sink_lines
from tests.fixtures.cdr import generic, read, source, with_variables
from tests.receiver import Receiver

NAME, PHONE, EMAIL = "黄秀英", "13800138000", "huang.xy@example.cn"
IDENTITY = (NAME, PHONE, "+86" + PHONE, EMAIL)
MATTER = ("正阳路小区南门口的共享单车堆放十分严重，已经占满人行道和盲道，老人和孩子只能走机动车道，"
          "早晚高峰时段尤其危险，物业和运营公司都说不归自己管，希望有关部门尽快协调清理并划定停放区域。")
CONTENT = f"我是{NAME}，电话{PHONE}，邮箱 {EMAIL}。{MATTER}"
SECRET_FORM = {"name": NAME, "phone": PHONE, "email": EMAIL, "subject": f"{NAME}反映单车",
               "content": CONTENT, "address": "城阳区正阳路", "confidential": True}
NOW = datetime(2024, 5, 6, 3, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = """
rules: []
confidential:
  - name: whistleblower
    when: {keywords: [举报, 检举]}
"""


def leaks(text: str | bytes) -> list[str]:
    """The reporter's identity values found in ``text``."""
    data = text.decode() if isinstance(text, bytes) else text
    return [v for v in IDENTITY if v in data]


def complaint_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "channel": "phone", "source": "hotline", "source_ref": "c-1",
        "received_at": NOW.isoformat(), "reported_at": NOW.isoformat(),
        "reporter": {"name": NAME, "phone": "+86" + PHONE, "email": EMAIL,
                     "anonymous": False, "reply_wanted": True},
        "confidential": True, "subject": f"{NAME}来电", "body": CONTENT,
        "location": {"address": f"{NAME}家门口"},
        "attachments": [{"file_name": f"{NAME}.jpg", "media_type": "image/jpeg", "size": 1,
                         "sha256": "0" * 64, "storage_ref": "sha256:" + "0" * 64}],
        "call": {"call_id": "c-1", "direction": "inbound", "caller": "+86" + PHONE,
                 "callee": "12345", "agent": "1024"},
        "case_code": "CY-20240506-P-000001-7", "schema_version": 1, "raw_ref": "raw:1",
    }
    document.update(changes)
    return document


# -- the schema ---------------------------------------------------------------------------


def test_old_documents_without_the_flag_still_load_and_the_schema_says_so() -> None:
    old = complaint_document()
    del old["confidential"]
    assert Complaint.model_validate_json(json.dumps(old)).confidential is False
    prop = complaint_json_schema()["properties"]["confidential"]
    assert prop["type"] == "boolean" and prop["default"] is False
    assert "confidential" not in complaint_json_schema().get("required", [])


# -- the one masking function -------------------------------------------------------------


def test_mask_document_removes_the_identity_everywhere_and_stays_a_valid_complaint() -> None:
    document = complaint_document()
    masked = mask_document(document)
    assert leaks(json.dumps(masked, ensure_ascii=False)) == []
    assert masked["reporter"]["name"] is None and masked["reporter"]["phone"] is None
    assert masked["call"]["caller"] is None and masked["call"]["callee"] == "12345"
    assert MATTER in masked["body"]  # the matter itself stays
    Complaint.model_validate(masked)  # still the canonical complaint
    assert leaks(json.dumps(document, ensure_ascii=False))  # the stored one is untouched


def test_an_outbound_call_masks_the_callee_and_a_post_its_author() -> None:
    masked = mask_document(complaint_document(
        call={"call_id": "c", "direction": "outbound", "caller": "12345",
              "callee": "+86" + PHONE},
        post={"url": "https://bbs.example/t/1", "author": NAME}))
    assert masked["call"] == {"call_id": "c", "direction": "outbound", "caller": "12345",
                              "callee": None}
    assert masked["post"]["author"] is None


def test_what_is_not_confidential_comes_back_as_the_same_bytes() -> None:
    plain = json.dumps(complaint_document(confidential=False), ensure_ascii=False)
    assert mask_json(plain) is plain
    assert mask_document(json.loads(plain))["reporter"]["name"] == NAME
    assert masked_text_of(json.loads(plain), CONTENT) == CONTENT
    assert mask_json("not json, \"confidential\"") == "not json, \"confidential\""


# -- setting the flag: the web mailbox ----------------------------------------------------


def web_draft(fields: dict[str, Any], content_type: str = "application/json") -> ComplaintDraft:
    payload = (json.dumps(fields, ensure_ascii=False).encode() if content_type.endswith("json")
               else "&".join(f"{k}={v}" for k, v in fields.items()).encode())
    raw = RawRecord(channel="web", source="web", source_ref="w-1", payload=payload,
                    content_type=content_type, received_at=NOW)
    return web_form.normalize(raw, NormalizerContext("web"))


@pytest.mark.parametrize(("value", "content_type", "expected"), [
    (True, "application/json", True), ("是", "application/json", True),
    (False, "application/json", False), ("on", "application/x-www-form-urlencoded", True),
    ("false", "application/x-www-form-urlencoded", False),
])
def test_the_web_form_field(value: Any, content_type: str, expected: bool) -> None:
    fields = {"phone": PHONE, "content": "路灯不亮", "confidential": value}
    assert web_draft(fields, content_type).confidential is expected


def test_the_web_form_default_and_a_wrong_value() -> None:
    assert web_draft({"phone": PHONE, "content": "路灯不亮"}).confidential is False
    with pytest.raises(Rejected) as caught:
        web_draft({"phone": PHONE, "content": "路灯不亮", "confidential": "maybe"})
    assert [(e.field, e.code) for e in caught.value.errors] == [
        ("confidential", "invalid_boolean")]


# -- setting the flag: call notes ---------------------------------------------------------


def phone_raw(payload: bytes, **metadata: Any) -> RawRecord:
    return RawRecord(channel="phone", source="hotline", source_ref="r", payload=payload,
                     content_type="application/json", received_at=NOW, metadata=metadata)


def test_call_notes_field() -> None:
    notes = json.loads(read("notes.json"))
    ctx = NormalizerContext("hotline", SHANGHAI, {})
    asked = call_notes.normalize(phone_raw(json.dumps({**notes, "confidential": True}).encode(),
                                           call_id="c-9"), ctx)
    plain = call_notes.normalize(phone_raw(json.dumps(notes).encode(), call_id="c-9"), ctx)
    assert asked.confidential is True and plain.confidential is False


def test_the_generic_record_notes_and_the_freeswitch_variable() -> None:
    record = generic("generic_answered.json")
    record["notes"]["confidential"] = "true"
    ctx = NormalizerContext("hotline", SHANGHAI, {})
    assert generic_json.normalize(phone_raw(json.dumps(record).encode()), ctx).confidential
    fs = with_variables("freeswitch_answered.json", complaint_confidential="true")
    assert freeswitch_json.normalize(phone_raw(fs), ctx).confidential
    plain = freeswitch_json.normalize(phone_raw(read("freeswitch_answered.json")), ctx)
    assert plain.confidential is False


# -- setting the flag: a confidential rule ------------------------------------------------


def test_a_confidential_rule_reuses_the_routing_conditions(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    hints = RoutingHints(timezone=SHANGHAI, classifier=ClassifierConfig(),
                         deadlines=DeadlinesConfig(enabled=False),
                         rules=load_rules(path, None))
    tip = web_draft({"phone": PHONE, "content": "我要举报某饭店违规排污"})
    other = web_draft({"phone": PHONE, "content": "路灯不亮"})
    assert hints.apply(tip) == {"confidential": True}
    assert hints.apply(other) == {}
    assert hints.rules is not None and hints.rules.confidential_rules[0].name == "whistleblower"


def test_a_bad_confidential_rule_names_its_place(tmp_path: Path) -> None:
    from gateway.model.errors import ConfigError

    path = tmp_path / "rules.yaml"
    path.write_text("confidential:\n  - name: x\n    when: {regex: '('}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"confidential\[0\] when.regex"):
        load_rules(path, None)


# -- the outputs, end to end --------------------------------------------------------------


async def _post(gw: Gateway, path: str, body: dict[str, Any]) -> str:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        answer = await client.post(path, json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["case_code"])


async def _get(gw: Gateway, path: str, token: str = "test-api-token") -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        answer = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer


async def test_every_output_masks_a_confidential_case_but_the_full_sink(
    tmp_path: Path, store_url: str,
) -> None:
    receiver = Receiver()
    await receiver.start()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    sinks = [
        {"name": "masked", "kind": "jsonl", "path": str(tmp_path / "masked.jsonl"),
         "poll_interval_s": 0.2},
        {"name": "full", "kind": "jsonl", "path": str(tmp_path / "full.jsonl"),
         "poll_interval_s": 0.2, "confidential": "full"},
        {"name": "platform", "kind": "http", "url": receiver.url, "poll_interval_s": 0.2},
    ]
    sources = [{"name": "web", "adapter": "web_mailbox"}, source("hotline", "generic_json")]
    gw = Gateway(gateway_config(tmp_path, store_url, sinks=sinks, sources=sources,
                                routing={"rules": str(rules)}))
    await gw.start()
    try:
        asked = await _post(gw, "/intake/web", SECRET_FORM)
        # the same matter from someone else: related, so the first opens a cluster
        other = await _post(gw, "/intake/web", {
            "name": "王先生", "phone": "13900139000",
            "content": MATTER})
        by_rule = await _post(gw, "/intake/web", {
            "name": NAME, "phone": PHONE, "content": "我要举报某饭店夜间违规排污。"})
        call = generic("generic_answered.json", caller=PHONE)
        call["notes"].update(caller_name=NAME, confidential=True)
        by_call = await _post(gw, "/intake/hotline", call)
        confidential = {asked, by_rule, by_call}
        masked = await sink_lines(tmp_path / "masked.jsonl", 4 + 1)  # + other's cluster update
        full = await sink_lines(tmp_path / "full.jsonl", 4 + 1)
        await receiver.wait_for(lambda: {asked, other, by_rule, by_call} <= set(receiver.accepted))
        feed = (await _get(gw, "/v1/cases?after=0&limit=50")).text
        looked_up = {code: (await _get(gw, f"/v1/cases/{code}")).text for code in confidential}
        status = (await _get(gw, "/v1/status")).text
    finally:
        await gw.stop()
        await receiver.close()

    def documents(lines: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
        return [d for d in lines if d.get("case_code") == code]

    for code in confidential:
        for doc in documents(full, code):
            assert doc["confidential"] is True
        assert documents(full, code)[0]["reporter"]["name"] == NAME  # full: everything
        for doc in documents(masked, code):
            assert doc["confidential"] is True and leaks(json.dumps(doc, ensure_ascii=False)) == []
        assert leaks(looked_up[code]) == []
        assert json.loads(looked_up[code])["status_history"] == []
    # not confidential: as it was, in every output
    assert documents(masked, other)[0]["reporter"]["phone"] == "+8613900139000"
    assert (tmp_path / "masked.jsonl").read_text().count("+8613900139000") >= 1
    for request in receiver.requests:
        if request.key in confidential:
            assert leaks(request.body) == [], request.body
    assert "13900139000" in feed and leaks(feed) == []
    clusters = json.loads(status)["clusters"]
    assert clusters and clusters[0]["snippet"].startswith("我是***")
    assert leaks(status) == []


async def test_api_confidential_full_shows_everything(tmp_path: Path) -> None:
    gw = Gateway(gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}",
                                api={"token": "test-api-token", "confidential": "full"}))
    await gw.start()
    try:
        code = await _post(gw, "/intake/web", SECRET_FORM)
        looked_up = (await _get(gw, f"/v1/cases/{code}")).text
        feed = (await _get(gw, "/v1/cases?after=0")).text
    finally:
        await gw.stop()
    assert NAME in looked_up and EMAIL in feed


def test_the_weekly_report_quotes_a_confidential_case_masked() -> None:
    document = complaint_document()
    fact = _fact("CY-1", NOW.timestamp(), document, SHANGHAI)
    assert leaks(fact.text) == [] and fact.text.startswith("***")
    plain = _fact("CY-2", NOW.timestamp(), complaint_document(confidential=False), SHANGHAI)
    assert plain.text.startswith(NAME)


async def test_notes_that_ask_for_it_later_make_a_filed_call_confidential(
    tmp_path: Path, store_url: str,
) -> None:
    gw = Gateway(gateway_config(tmp_path, store_url,
                                sources=[source("hotline", "generic_json")]))
    await gw.start()
    try:
        call = generic("generic_answered.json", caller=PHONE)
        call["notes"].update(caller_name=NAME)
        code = await _post(gw, "/intake/hotline", call)
        notes = {**call["notes"], "confidential": True}
        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            answer = await client.post(f"/intake/hotline/calls/{call['call_id']}/notes",
                                       json=notes)
        assert answer.status_code in (200, 202), answer.text
        lines = await sink_lines(tmp_path / "cases.jsonl", 2)
        stored = await gw.store.read(lambda tx: tx.fetchone(
            "SELECT document FROM cases WHERE case_code = ?", (code,)))
    finally:
        await gw.stop()
    first, update = lines[0], lines[-1]
    assert first["confidential"] is False and first["reporter"]["name"] == NAME
    assert update["case_code"] == code and update["confidential"] is True
    assert leaks(json.dumps(update, ensure_ascii=False)) == []
    assert json.loads(stored[0])["reporter"]["name"] == NAME  # the store keeps it
