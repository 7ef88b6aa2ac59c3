"""The web mailbox normalizer: every rule of the form, every body shape, all errors at once."""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from gateway.model.errors import ConfigError, Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from normalizers.web_form import ENVELOPE_TYPE, normalize

FIXTURES = Path(__file__).parent / "fixtures" / "web"
SHARED_MESSAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "citizen_messages"
RECEIVED = datetime(2019, 11, 20, 1, 45, tzinfo=UTC)
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CJK = re.compile(r"[\u4e00-\u9fff]")
GOOD = {"phone": "13800138000", "content": "路灯不亮"}


def raw_of(payload: bytes | dict[str, Any] | list[Any] | str, content_type: str = JSON,
           source_ref: str = "web-1") -> RawRecord:
    if not isinstance(payload, bytes):
        payload = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return RawRecord(channel="web", source="web", source_ref=source_ref, payload=payload,
                     content_type=content_type, received_at=RECEIVED)


def run(payload: bytes | dict[str, Any] | list[Any] | str, content_type: str = JSON,
        **options: Any) -> ComplaintDraft:
    return normalize(raw_of(payload, content_type), NormalizerContext("web", options=options))


def rejected(payload: bytes | dict[str, Any] | list[Any] | str, content_type: str = JSON,
             **options: Any) -> dict[str, str]:
    """``{field: code}`` of every error the submission got."""
    with pytest.raises(Rejected) as info:
        run(payload, content_type, **options)
    found = {e.field: e.code for e in info.value.errors}
    assert len(found) == len(info.value.errors), f"a field reported twice: {info.value}"
    return found


def with_(**fields: Any) -> dict[str, Any]:
    return {**GOOD, **fields}


# --- body shapes -------------------------------------------------------------------------

def test_json_fixture_is_mapped_field_by_field() -> None:
    draft = run((FIXTURES / "streetlight.json").read_bytes())
    assert draft.channel == "web" and draft.source == "web"
    assert draft.source_ref == "wx-2019-11-20-0042"  # the form's own id
    assert draft.received_at == RECEIVED
    assert draft.reported_at == datetime(2019, 11, 20, 1, 30, tzinfo=UTC)
    assert draft.reporter.model_dump() == {
        "name": "黄 女士", "phone": "+8613800138000", "email": "huang.nvshi@example.com",
        "handle": None, "anonymous": False, "reply_wanted": True,
    }
    assert draft.subject == "正阳路 路灯 不亮"
    assert draft.body == (
        "正阳路与长城路路口往东约 200 米的三盏路灯，自上周起每晚都不亮。\n\n"
        "夜间行人和电动车很多，存在安全隐患，请有关部门尽快维修。"
    )
    assert draft.location is not None
    assert draft.location.address == "城阳区 正阳路 长城路路口"
    assert draft.location.district_code == "370214"
    assert draft.category_hint == "城乡建设"
    assert draft.attachments == []


def test_urlencoded_fixture() -> None:
    draft = run((FIXTURES / "noise.txt").read_bytes(), FORM)
    assert draft.reporter.name == "李先生"
    assert draft.reporter.phone == "+8653288886666"
    assert draft.subject == "夜间施工噪音"
    assert draft.body == "工地每天凌晨仍在施工，影响居民休息。"
    assert draft.source_ref == "web-1"  # no submission_id: the adapter's reference


def test_urlencoded_raw_utf8_as_curl_sends_it() -> None:
    draft = run("phone=13800138000&content=路灯 不亮".encode(), FORM)
    assert draft.body == "路灯 不亮"


def test_urlencoded_in_the_declared_charset() -> None:
    body = urlencode({"phone": "13800138000", "content": "路灯不亮"}, encoding="gbk").encode()
    assert run(body, f"{FORM}; charset=GBK").body == "路灯不亮"
    raw_gbk = "phone=13800138000&content=路灯不亮".encode("gbk")
    assert run(raw_gbk, f"{FORM}; charset=\"gbk\"").body == "路灯不亮"


def test_urlencoded_repeated_field_keeps_the_last_value() -> None:
    assert run(b"phone=13800138000&content=a&content=b", FORM).body == "b"


@pytest.mark.parametrize("body", [
    b"phone=13800138000&content=%E8%B7%AF%FF",       # a percent-escape that is not UTF-8
    "phone=13800138000&content=路灯".encode("gbk"),   # GBK octets, no charset declared
])
def test_urlencoded_that_is_not_in_its_charset_is_unreadable(body: bytes) -> None:
    assert rejected(body, FORM) == {"body": "unreadable"}


def test_envelope_fixture_with_attachments() -> None:
    draft = run((FIXTURES / "envelope.json").read_bytes(), ENVELOPE_TYPE)
    assert draft.reporter.email == "wang@example.org"
    assert draft.reporter.phone is None
    assert [a.file_name for a in draft.attachments] == ["垃圾桶.jpg"]
    assert draft.attachments[0].storage_ref.startswith("sha256:2d44e8")
    assert draft.subject == "小区门口垃圾桶满溢多日无人清运，附照片一张。"


@pytest.mark.parametrize("envelope", [
    [1, 2],
    {"attachments": []},
    {"fields": "content=x"},
    {"fields": {"content": "x", "phone": "13800138000"}, "attachments": [{"file_name": "a"}]},
    {"fields": {"content": "x", "phone": "13800138000"},
     "attachments": [{"file_name": "a", "media_type": "image/png", "size": 1,
                      "sha256": "../../etc/passwd", "storage_ref": "x"}]},
])
def test_broken_envelope_is_unreadable(envelope: Any) -> None:
    assert rejected(envelope, ENVELOPE_TYPE) == {"body": "unreadable"}


@pytest.mark.parametrize("content_type", [
    "application/json; charset=utf-8", "application/problem+json", "APPLICATION/JSON",
])
def test_json_media_type_variants(content_type: str) -> None:
    assert run(GOOD, content_type).body == "路灯不亮"


def test_json_with_a_byte_order_mark() -> None:
    assert run(b"\xef\xbb\xbf" + json.dumps(GOOD).encode()).body == "路灯不亮"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data",
                                          "application/octet-stream", ""])
def test_unsupported_media_type(content_type: str) -> None:
    assert rejected(GOOD, content_type) == {"body": "unsupported_media_type"}


@pytest.mark.parametrize("body", [b"{", b"", b"{'content': 'x'}", b"\xff\xfe{}", b"null}"])
def test_invalid_json_is_unreadable(body: bytes) -> None:
    assert rejected(body) == {"body": "unreadable"}


def test_unknown_charset_is_unreadable() -> None:
    assert rejected(GOOD, "application/json; charset=klingon") == {"body": "unreadable"}


@pytest.mark.parametrize("value", [[GOOD], "路灯不亮", 42, None, True])
def test_json_that_is_not_an_object(value: Any) -> None:
    with pytest.raises(Rejected) as info:
        run(value)
    (error,) = info.value.errors
    assert (error.field, error.code) == ("body", "not_object")
    assert error.zh == "请求体须为 JSON 对象" and "object" in error.en


# --- rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [None, "", "   ", "\u3000\xa0\n\t\r\n", "\u200b"])
def test_content_is_required(content: str | None) -> None:
    fields = {"phone": "13800138000"} if content is None else with_(content=content)
    assert rejected(fields) == {"content": "required"}


@pytest.mark.parametrize(("phone", "e164"), [
    ("13800138000", "+8613800138000"),
    ("+86 138-0013-8000", "+8613800138000"),
    ("0086 13800138000", "+8613800138000"),
    ("0532-88886666", "+8653288886666"),
    ("（0532）88886666", "+8653288886666"),
    ("010-12345678", "+861012345678"),
    (13800138000, "+8613800138000"),  # a number in JSON is taken as its digits
])
def test_valid_phone_is_stored_as_e164(phone: Any, e164: str) -> None:
    assert run(with_(phone=phone)).reporter.phone == e164


@pytest.mark.parametrize("phone", ["12345", "88886666", "0999-88886666", "1380013800",
                                   "+1 650 253 0000", "电话", 1.5])
def test_invalid_phone_names_the_field(phone: Any) -> None:
    with pytest.raises(Rejected) as info:
        run(with_(phone=phone))
    (error,) = info.value.errors
    assert (error.field, error.code) == ("phone", "invalid_phone")
    assert "手机" in error.zh and "landline" in error.en


def test_contact_required_unless_anonymous() -> None:
    assert rejected({"content": "路灯不亮"}) == {"phone": "contact_required"}
    assert rejected({"content": "路灯不亮", "phone": " ", "email": ""}) == {
        "phone": "contact_required"}
    anonymous = run({"content": "路灯不亮", "anonymous": "是"})
    assert anonymous.reporter.anonymous is True
    assert anonymous.reporter.reply_wanted is False  # default when anonymous
    assert anonymous.reporter.phone is None and anonymous.reporter.email is None


def test_email_alone_is_enough_contact() -> None:
    draft = run({"content": "路灯不亮", "email": "a.b+c@example.com.cn"})
    assert draft.reporter.email == "a.b+c@example.com.cn" and draft.reporter.phone is None


def test_a_given_but_invalid_contact_is_reported_once() -> None:
    assert rejected({"content": "x", "email": "nobody"}) == {"email": "invalid_email"}
    assert rejected({"content": "x", "phone": "12345"}) == {"phone": "invalid_phone"}


@pytest.mark.parametrize("email", ["nobody", "a@b", "a@b.c", "a b@example.com", "@example.com",
                                   "a@@example.com", "a@example .com", "x" * 65 + "@example.com"])
def test_invalid_email(email: str) -> None:
    assert rejected(with_(email=email)) == {"email": "invalid_email"}


@pytest.mark.parametrize("email", ["zhang.san@example.com", "wang_wu@163.com",
                                   "li+12345@mail.gov.cn", "黄@例子.中国"])
def test_valid_email(email: str) -> None:
    assert run(with_(email=email)).reporter.email == email


LIMITS = [("name", "max_name_chars", 50), ("subject", "max_subject_chars", 200),
          ("content", "max_content_chars", 5000), ("address", "max_address_chars", 200)]


@pytest.mark.parametrize(("field", "option", "limit"), LIMITS)
def test_default_length_limits_count_characters(field: str, option: str, limit: int) -> None:
    run(with_(**{field: "路" * limit}))  # exactly at the limit: accepted
    with pytest.raises(Rejected) as info:
        run(with_(**{field: "路" * (limit + 1)}))
    (error,) = info.value.errors
    assert (error.field, error.code) == (field, "too_long")
    assert f"{limit}" in error.zh and f"({limit + 1})" in error.en


@pytest.mark.parametrize(("field", "option", "limit"), LIMITS)
def test_length_limits_follow_the_source_options(field: str, option: str, limit: int) -> None:
    run(with_(**{field: "路" * 8}), **{option: 8})
    assert rejected(with_(**{field: "路" * 9}), **{option: 8}) == {field: "too_long"}
    run(with_(**{field: "路" * (limit + 100)}), **{option: limit + 100})


@pytest.mark.parametrize(("field", "limit"), [("phone", 32), ("email", 254),
                                              ("district_code", 12), ("category", 100),
                                              ("submission_id", 128), ("submitted_at", 40)])
def test_fixed_length_limits(field: str, limit: int) -> None:
    assert rejected(with_(**{field: "1" * (limit + 1)})) == {field: "too_long"}


def test_length_is_measured_after_clean_up() -> None:
    run(with_(name="\u3000" * 30 + "黄女士" + "\xa0" * 30), max_name_chars=3)


def test_bad_limit_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_name_chars"):
        run(GOOD, max_name_chars=0)


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), ("FALSE", False), ("1", True), ("0", False),
    (1, True), (0, False), ("yes", True), ("no", False), ("on", True), ("off", False),
    ("是", True), ("否", False), (" Y ", True), ("", False),
])
def test_booleans(value: Any, expected: bool) -> None:
    draft = run({"content": "x", "email": "a@example.com", "anonymous": value,
                 "reply_wanted": value})
    assert draft.reporter.anonymous is expected
    assert draft.reporter.reply_wanted is expected


@pytest.mark.parametrize("value", ["maybe", "2", 2, "也许", [True], {"v": 1}])
def test_invalid_booleans(value: Any) -> None:
    assert rejected(with_(anonymous=value, reply_wanted=value)) == {
        "anonymous": "invalid_boolean", "reply_wanted": "invalid_boolean"}


@pytest.mark.parametrize(("text", "utc"), [
    ("2019-11-20T09:30:00+08:00", datetime(2019, 11, 20, 1, 30, tzinfo=UTC)),
    ("2019-11-20 09:30:00+08:00", datetime(2019, 11, 20, 1, 30, tzinfo=UTC)),
    ("2019-11-20T01:30:00Z", datetime(2019, 11, 20, 1, 30, tzinfo=UTC)),
    ("2019-11-19T20:30:00.250-05:00", datetime(2019, 11, 20, 1, 30, 0, 250000, tzinfo=UTC)),
])
def test_submitted_at_becomes_reported_at_in_utc(text: str, utc: datetime) -> None:
    draft = run(with_(submitted_at=text))
    assert draft.reported_at == utc
    assert draft.received_at == RECEIVED


@pytest.mark.parametrize("text", ["2019-11-20T09:30:00", "2019/11/20 09:30:00", "昨天上午",
                                  "2019-02-30T09:30:00+08:00", "1574213400"])
def test_submitted_at_needs_an_iso_time_with_a_zone(text: str) -> None:
    with pytest.raises(Rejected) as info:
        run(with_(submitted_at=text))
    (error,) = info.value.errors
    assert (error.field, error.code) == ("submitted_at", "invalid_datetime")
    assert "提交时间" in error.zh and "ISO 8601" in error.en


def test_without_submitted_at_reported_at_is_the_receipt_time() -> None:
    assert run(GOOD).reported_at == RECEIVED


@pytest.mark.parametrize("field", ["name", "phone", "email", "subject", "content", "address",
                                   "district_code", "category", "submission_id",
                                   "submitted_at"])
@pytest.mark.parametrize("value", [{"a": 1}, ["a"], True, False])
def test_non_string_values_are_refused(field: str, value: Any) -> None:
    errors = rejected(with_(**{field: value}))
    assert errors[field] == "invalid_type"


def test_all_errors_are_reported_at_once_naming_each_form_field() -> None:
    with pytest.raises(Rejected) as info:
        run((FIXTURES / "broken.json").read_bytes())
    found = {e.field: e.code for e in info.value.errors}
    assert len(info.value.errors) == 7
    assert found == {
        "name": "too_long", "phone": "invalid_phone", "email": "invalid_email",
        "content": "required", "anonymous": "invalid_boolean",
        "submitted_at": "invalid_datetime", "address": "invalid_type",
    }
    for error in info.value.errors:
        assert CJK.search(error.zh), error
        assert re.search(r"[a-z]{3}", error.en) and not CJK.search(error.en), error
        assert error.reason == f"{error.zh} ({error.en})"
        assert error.as_dict()["field"] == error.field
    assert "phone: not a valid Chinese mobile" in str(info.value)


def test_urlencoded_errors_name_the_form_fields_too() -> None:
    body = urlencode({"name": "黄" * 51, "phone": "12345", "content": ""}).encode()
    assert rejected(body, FORM) == {"name": "too_long", "phone": "invalid_phone",
                                    "content": "required"}


# --- text clean-up -----------------------------------------------------------------------

def test_nfc_normalization_of_every_text_field() -> None:
    decomposed = unicodedata.normalize("NFD", "Zoë Café")
    draft = run(with_(name=decomposed, subject=decomposed, content=decomposed,
                      address=decomposed, category=decomposed))
    for value in (draft.reporter.name, draft.subject, draft.body, draft.category_hint,
                  draft.location.address if draft.location else None):
        assert value == "Zoë Café"


def test_whitespace_like_real_scraped_messages() -> None:
    content = ("\n\t\t\t\t\t\n\t\t\t\t\t\u3000\u3000我是A3区居民，小区旁的\xa0幼儿园\xa0\xa0门口"
               "每天早上车辆乱停。\n\t\t\t\t\t\n\t\t\t\t\t\n\t\t\t\t")
    draft = run(with_(content=content, name="\xa0李\u3000\u3000四\t", address="A市\r\nA3区"))
    assert draft.body == "我是A3区居民，小区旁的 幼儿园 门口每天早上车辆乱停。"
    assert draft.reporter.name == "李 四"
    assert draft.location is not None and draft.location.address == "A市 A3区"


def test_chinese_text_is_intact() -> None:
    content = "反映：“A7县星沙镇”夜间施工扰民（已持续两周）！请答复——谢谢。\n\n第二段：附言。"
    assert run(with_(content=content)).body == content


def test_subject_defaults_to_the_first_line_of_content() -> None:
    assert run(with_(content="路灯不亮\n第二行")).subject == "路灯不亮"
    long_line = "路" * 40
    subject = run(with_(content=long_line)).subject
    assert subject == "路" * 29 + "…" and len(subject) == 30


def test_unknown_fields_are_ignored_and_no_location_without_address() -> None:
    draft = run(with_(csrf_token="abc", _ga="GA1.2", captcha=["x"]))
    assert draft.location is None
    assert draft.category_hint is None


# --- extra: the real message-board sample, when the shared data is present --------------

def _shared_messages() -> list[dict[str, str]]:
    path = SHARED_MESSAGES / "附件2_sample495_labeled.csv"
    if not path.exists():
        pytest.skip(f"shared sample data not found at {path}")
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_real_citizen_messages_are_accepted_and_cleaned() -> None:
    rows = _shared_messages()
    assert len(rows) == 495
    for row in rows:
        body = urlencode({"subject": row["留言主题"], "content": row["留言详情"],
                          "anonymous": "1"}, quote_via=quote).encode()
        draft = run(body, FORM)
        original = unicodedata.normalize("NFC", row["留言详情"])
        assert re.sub(r"\s", "", draft.body) == re.sub(r"\s", "", original), row["留言编号"]
        assert not re.search(r"[\t\u3000\xa0]|  |^\s|\s$|\n{3}", draft.body), row["留言编号"]
        assert draft.subject == re.sub(r"\s+", " ", row["留言主题"]).strip()
