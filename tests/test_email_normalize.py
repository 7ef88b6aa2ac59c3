"""The ``email`` normalizer and the mail filters over the fixture mails
(tests/fixtures/email: written for the project, modelled on real Chinese mail).

Every fixture ends as a complaint, a filtered mail or a rejection with a reason; none
raises. The ``outcome`` function below is what the IMAP adapter plus the pipeline do.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from gateway.model.validation import validate_draft
from normalizers.email import decode_bytes, decode_words, message_ref, normalize, parse_message
from normalizers.email import filters as mail_filters
from tests.procs import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "email"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "email"
OWN = ["hotline@12345.example.cn"]
RECEIVED = datetime(2019, 12, 1, 8, 0, tzinfo=UTC)


def raw_of(data: bytes, name: str = "mail.eml") -> RawRecord:
    return RawRecord(channel="email", source="mail", source_ref=name, payload=data,
                     content_type="message/rfc822", received_at=RECEIVED)


def outcome(data: bytes, options: dict[str, object] | None = None
            ) -> tuple[str, ComplaintDraft | str]:
    """("filtered", reason) | ("rejected", reasons) | ("complaint", draft)."""
    verdict = mail_filters.check(parse_message(data, headers_only=True), OWN)
    if verdict is not None:
        return "filtered", verdict.reason
    try:
        draft = normalize(raw_of(data), NormalizerContext("mail", options=options or {}))
        validate_draft(draft)
    except Rejected as exc:
        return "rejected", str(exc)
    return "complaint", draft


def complaint(name: str, options: dict[str, object] | None = None) -> ComplaintDraft:
    kind, result = outcome((FIXTURES / name).read_bytes(), options)
    assert kind == "complaint", result
    assert isinstance(result, ComplaintDraft)
    return result


def _no_mojibake(text: str) -> None:
    assert "\ufffd" not in text and "?" * 3 not in text
    assert not any("\ue000" <= ch <= "\uf8ff" or "\udc80" <= ch <= "\udcff" for ch in text)


EXPECTED = {
    "gb2312_with_gbk_chars.eml": "complaint",
    "gbk_quoted_printable.eml": "complaint",
    "gb18030_four_byte.eml": "complaint",
    "big5_hkscs.eml": "complaint",
    "encoded_words.eml": "complaint",
    "html_only.eml": "complaint",
    "nested_multipart.eml": "complaint",
    "reply_original_message.eml": "complaint",
    "reply_netease.eml": "complaint",
    "raw_8bit_headers.eml": "complaint",
    "no_charset_gbk.eml": "complaint",
    "wrong_label_gbk.eml": "complaint",
    "broken_mime.eml": "complaint",
    "no_message_id.eml": "complaint",
    "auto_reply.eml": "filtered",
    "out_of_office.eml": "filtered",
    "out_of_office_zh.eml": "filtered",
    "own_address.eml": "filtered",
    "bounce_dsn.eml": "filtered",
    "read_receipt.eml": "filtered",
    "self_sent.eml": "filtered",
    "empty.eml": "rejected",
    "not_a_mail.eml": "rejected",
    # issue 17 (exact texts in tests/test_email_corpus.py)
    "raw_gbk_subject_latin_label.eml": "complaint",
    "german_latin1.eml": "complaint",
    "russian_koi8r.eml": "complaint",
    "russian_cp1251_latin_label.eml": "complaint",
    "broken_encoded_words.eml": "complaint",
    "split_multibyte_words.eml": "complaint",
    "gb2312_bulk_reply.eml": "complaint",
    "newsletter.eml": "filtered",
    "auto_submitted_bulk.eml": "filtered",
    "dsn_gbk.eml": "filtered",
}


def test_every_fixture_is_listed() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_ends_as_expected_with_a_reason(name: str) -> None:
    kind, result = outcome((FIXTURES / name).read_bytes())
    assert kind == EXPECTED[name], result
    if kind == "complaint":
        assert isinstance(result, ComplaintDraft)
        assert result.channel == "email" and result.body and result.subject
        _no_mojibake(result.subject)
        _no_mojibake(result.body)
    else:
        assert isinstance(result, str) and result  # the reason is recorded


@pytest.mark.parametrize(("name", "subject", "name_", "in_body"), [
    ("gb2312_with_gbk_chars.eml", "堃园小区烧烤油烟扰民（王喆）", "王喆", "孩子珺珺无法入睡"),
    ("gbk_quoted_printable.eml", "朝阳路红绿灯故障", "李赟", "行人过马路很危险"),
    ("gb18030_four_byte.eml", "𠮷野家门口占道经营", "赵先生", "收费 20€ 起"),
    ("big5_hkscs.eml", "升降機壞咗一個禮拜", "陳大文", "管理處嘅回覆"),
    ("raw_8bit_headers.eml", "自来水管爆裂，门口积水", "刘师傅", "请自来水公司尽快抢修"),
    ("no_charset_gbk.eml", "公交站牌被撞倒", "Ma Li", "站牌昨天被一辆货车撞倒了"),
    ("wrong_label_gbk.eml", "complaint", "Tian Ye", "已经有三位老人被困在电梯里"),
])
def test_chinese_charsets_decode_without_mojibake(name: str, subject: str, name_: str,
                                                  in_body: str) -> None:
    draft = complaint(name)
    assert draft.subject == subject
    assert draft.reporter.name == name_
    assert in_body in draft.body


def test_encoded_words_split_inside_a_character_and_mixed_charsets() -> None:
    draft = complaint("encoded_words.eml")
    assert draft.subject == "关于幸福里小区停车难的问题 （再次反映）"
    assert draft.reporter.name == "孙 女士"
    assert draft.reporter.email == "sun.reply@example.cn"  # Reply-To is where answers go


def test_html_only_mail_becomes_clean_text_with_paragraphs() -> None:
    body = complaint("html_only.eml").body
    assert body.startswith("尊敬的12345热线：\n\n新华街菜市场周边")
    assert "\n\n请环卫部门 尽快处理。谢谢！" in body
    for leftover in ("<", "tracking", "color", "ignored title", "comment"):
        assert leftover not in body


def test_nested_multipart_keeps_text_inline_image_and_attachments() -> None:
    draft = complaint("nested_multipart.eml")
    assert draft.body.startswith("路灯坏了，照片见附件。\n具体位置：滨河路88号对面。")
    names = {a.file_name: a for a in draft.attachments}
    assert set(names) == {"attachment-1.png", "路灯报修单.pdf", "现场情况说明.docx"}
    pdf = names["路灯报修单.pdf"]
    assert pdf.media_type == "application/pdf"
    assert draft.blobs[pdf.sha256].startswith(b"%PDF-")
    assert pdf.sha256 == hashlib.sha256(draft.blobs[pdf.sha256]).hexdigest()
    assert names["现场情况说明.docx"].media_type.endswith("wordprocessingml.document")
    assert names["attachment-1.png"].media_type == "image/png"
    # the .exe is not kept, and the body says so
    assert "setup.exe" in draft.body and "type not accepted" in draft.body


def test_attachment_limits_come_from_the_source_options() -> None:
    draft = complaint("nested_multipart.eml", {"max_attachments": 1})
    assert len(draft.attachments) == 1
    assert "too many attachments" in draft.body
    draft = complaint("nested_multipart.eml", {"max_attachment_mb": 0.000045})  # 47 bytes
    assert {a.file_name for a in draft.attachments} == {"路灯报修单.pdf", "现场情况说明.docx"}
    assert "attachment-1.png (超过 4.5e-05 MB / too large)" in draft.body


def test_quoted_history_is_cut_but_kept_in_the_raw_mail() -> None:
    draft = complaint("reply_original_message.eml")
    assert draft.body == ("处理结果我不满意，噪音问题依然存在，昨晚十一点还在施工。\n"
                          "请再派人来看看。")
    assert "reply" in draft.tags
    # the raw mail (journaled as received) still holds the history
    kept = complaint("reply_original_message.eml", {"strip_quoted": False})
    assert "-----原始邮件-----" in kept.body and "转交区城管局处理" in kept.body
    netease = complaint("reply_netease.eml")
    assert netease.body == "谢谢回复。但是井盖到现在还没有盖上，晚上很危险。"
    # a forward (QQ Mail marks those with "原始邮件" too) keeps everything
    forward = (FIXTURES / "reply_original_message.eml").read_bytes().replace(
        b"Subject: =?utf-8?B?", b"Subject: Fwd: =?utf-8?B?")
    kind, draft = outcome(forward)
    assert kind == "complaint" and isinstance(draft, ComplaintDraft)
    assert "转交区城管局处理" in draft.body


def test_broken_mime_is_read_as_far_as_it_goes() -> None:
    draft = complaint("broken_mime.eml")
    assert draft.subject == "小区门禁坏了"  # an encoded word without its "?="
    assert draft.body.startswith("门禁系统坏了两个星期")  # damaged base64
    assert draft.reported_at == RECEIVED  # "Date: not a date"


def test_source_ref_is_the_message_id_or_a_hash_of_stable_headers() -> None:
    assert complaint("big5_hkscs.eml").source_ref == "<big5-hkscs-1@example.hk>"
    data = (FIXTURES / "no_message_id.eml").read_bytes()
    ref = complaint("no_message_id.eml").source_ref
    assert ref.startswith("sha256:") and len(ref) == 7 + 64
    # the same header read alone (what the IMAP adapter fetches first) gives the same ref
    assert message_ref(parse_message(data.split(b"\r\n\r\n")[0], headers_only=True)) == ref
    # a Received: line added by another hop does not change it
    assert message_ref(parse_message(b"Received: from x by y\r\n" + data)) == ref


def test_reported_at_is_the_date_header_but_never_after_receipt() -> None:
    assert complaint("gbk_quoted_printable.eml").reported_at == datetime(
        2019, 11, 21, 0, 5, 11, tzinfo=UTC)
    future = (FIXTURES / "no_message_id.eml").read_bytes().replace(
        b"Sat, 30 Nov 2019 23:10:00 +0800", b"Sat, 30 Nov 2030 23:10:00 +0800")
    kind, draft = outcome(future)
    assert kind == "complaint" and isinstance(draft, ComplaintDraft)
    assert draft.reported_at == RECEIVED


def test_rejections_name_the_field() -> None:
    kind, reason = outcome((FIXTURES / "empty.eml").read_bytes())
    assert (kind, reason) == ("rejected", "body: the mail has no text, subject or attachment")
    kind, reason = outcome((FIXTURES / "not_a_mail.eml").read_bytes())
    assert kind == "rejected" and "message" in str(reason)


@pytest.mark.parametrize(("name", "code"), [
    ("auto_reply.eml", "auto_reply"), ("out_of_office.eml", "auto_reply"),
    ("out_of_office_zh.eml", "auto_reply"), ("bounce_dsn.eml", "bounce"),
    ("read_receipt.eml", "receipt"), ("self_sent.eml", "self_sent"),
    ("own_address.eml", "self_sent"),
])
def test_filters_say_why(name: str, code: str) -> None:
    verdict = mail_filters.check(parse_message((FIXTURES / name).read_bytes()), OWN)
    assert verdict is not None and verdict.code == code
    assert verdict.as_detail()["reason"].startswith(verdict.reason.split(" ")[0])


@pytest.mark.parametrize(("headers", "code"), [
    ("Auto-Submitted: auto-generated", "auto_reply"),
    ("Auto-Submitted: no", None),
    ("X-Autoreply: yes", "auto_reply"),
    ("X-Autorespond: vacation", "auto_reply"),
    ("Precedence: bulk", None),  # issue 17: bulk is not automatic (never auto-answered)
    ("Precedence: junk", None),
    ("Precedence: list", None),
    ("X-Loop: office@agency.example.cn", None),  # lists add it to citizens' mail too
    ("Subject: =?utf-8?B?6Ieq5Yqo5Zue5aSN?=", "auto_reply"),  # 自动回复
    ("Subject: Out of Office: back Monday", "auto_reply"),
    ("Subject: 【自动答复】我已收到", "auto_reply"),
    ("Subject: 关于自动回复功能的投诉", None),  # a citizen writing about auto-replies
    ("From: MAILER-DAEMON@mx.example.cn", "bounce"),
    ("From: PostMaster@qq.example.cn\r\nSubject: 系统退信", "bounce"),
    ("Return-Path: <>", "bounce"),
    ("From: 12345 <HOTLINE@12345.example.cn>", "self_sent"),
    ("X-Minsheng-Gateway: ack", "self_sent"),
])
def test_filter_rules(headers: str, code: str | None) -> None:
    if not headers.startswith("From:"):
        headers = f"From: citizen@example.cn\r\n{headers}"
    data = f"{headers}\r\nTo: hotline@12345.example.cn\r\n\r\nbody\r\n".encode()
    verdict = mail_filters.check(parse_message(data), OWN)
    assert (verdict.code if verdict else None) == code


def test_header_decoding_helpers() -> None:
    assert decode_words("=?gb2312?B?udjT2tChx/jJ+rvu?=") == "关于小区生活"
    assert decode_words("=?gb2312?B?1f4=?= =?gb2312?B?uK4=?=") == "政府"  # adjacent words
    assert decode_words("=?unknown-8bit?Q?=D5=C5=C8=FD?=") == "张三"
    assert decode_words("plain \udcd5\udcc5 text") == "plain 张 text"  # raw 8-bit GBK
    assert decode_bytes("噪音".encode("gbk"), "gb2312") == "噪音"
    assert decode_bytes("嘅".encode("big5hkscs"), "big5") == "嘅"
    assert decode_bytes(b"\x1b$B$9$_$^$;$s\x1b(B") == "すみません"  # ISO-2022-JP, unlabelled


def test_the_cli_normalizes_an_eml_file() -> None:
    result = run_cli("normalize", "--format", "email", str(FIXTURES / "big5_hkscs.eml"))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["channel"] == "email" and document["subject"] == "升降機壞咗一個禮拜"
    rejected = run_cli("normalize", "--format", "email", str(FIXTURES / "empty.eml"))
    assert rejected.returncode == 1 and "body" in rejected.stdout
    filtered = run_cli("normalize", "--format", "email", str(FIXTURES / "auto_reply.eml"))
    assert filtered.returncode == 3, filtered.stderr
    assert json.loads(filtered.stdout)["filtered"]["filter"] == "auto_reply"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/email is not there")
def test_real_mails_from_the_shared_samples_never_raise() -> None:
    """An extra: the real public mails in ../shared/data/email all end somewhere."""
    seen = {"complaint": 0, "filtered": 0, "rejected": 0}
    for path in sorted(SHARED.rglob("*")):
        if path.is_file():
            kind, result = outcome(path.read_bytes())
            seen[kind] += 1
            if kind == "complaint":
                assert isinstance(result, ComplaintDraft) and result.body
    assert seen["complaint"] > 100 and seen["filtered"] >= 10


def _photo_only(sender: str) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "xinxiang@example.gov.cn", ""
    msg["Message-ID"] = f"<{sender}@example.com>"
    msg.add_attachment(b"\xff\xd8\xff\xe0" + sender.encode() * 40, maintype="image",
                       subtype="jpeg", filename="photo.jpg")
    return msg.as_bytes()


def test_the_placeholder_of_an_attachment_only_mail_is_not_compared_by_dedup() -> None:
    from gateway.dedup.deduplicator import Deduplicator

    drafts = [normalize(raw_of(_photo_only(s)), NormalizerContext("mail"))
              for s in ("a@example.com", "b@example.com")]
    assert all(d.body.startswith("（邮件正文为空") for d in drafts)
    assert all(d.text_is_generated for d in drafts)
    prints = [Deduplicator().fingerprint(d) for d in drafts]
    # two citizens' photos are not "related" because of our placeholder words
    assert prints[0].bands == () and prints[0].signature == b""
    assert prints[0].content_hash != prints[1].content_hash  # the photos differ
    assert not complaint("html_only.eml").text_is_generated
