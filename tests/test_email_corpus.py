"""Issue 17, item 4: every mail we have, real and written, reads without mojibake.

Over every mail in ../shared/data/email (real public mails: CPython's and imap_tools'
test suites, SpamAssassin's samples; read when present, skipped when not) and every
fixture in tests/fixtures/email: no U+FFFD, no ``锟斤拷`` (UTF-8 → GBK → UTF-8 damage),
no Latin-1 read as GBK and no GBK/Big5 read as Latin-1 in any subject, sender name or
body text; and for each fixture with a known answer, its exact subject and body.

The mojibake patterns here are the test's own (simple and strict), not the measure the
decision uses (``normalizers.common.plausibility``), so the test does not grade itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.model.normalize import NormalizerContext
from normalizers.email import addresses, header_text, iter_texts, normalize, parse_message
from normalizers.email.parts import text_charset
from tests.test_email_normalize import FIXTURES, complaint, raw_of

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "email"

# A Chinese character between two Latin letters ("M黱chen"), or a private-use character
# (GB18030's reading of Latin-1 bytes such as "\ue3ea"): Latin-1 read as GBK.
LATIN1_AS_GBK = re.compile(
    r"[A-Za-z\u00c0-\u00ff][\u3400-\u9fff][A-Za-z\u00c0-\u00ff]|[\ue000-\uf8ff]")
# Two Latin-1 characters in a row of which one is a sign ("×ª·¢£º", "Ã©"), or a
# small letter followed by a capital among them ("ÔëÒô"): GBK (or UTF-8) read as Latin-1.
GBK_AS_LATIN1 = re.compile(
    r"[\u00c0-\u00ff][\u00a2-\u00be\u00d7\u00f7]|[\u00a2-\u00be\u00d7\u00f7][\u00c0-\u00ff]"
    r"|[\u00df-\u00ff][\u00c0-\u00de]"
)
MOJIBAKE = {
    "U+FFFD": re.compile("\ufffd"),
    "锟斤拷": re.compile("锟斤拷"),
    "Latin-1 read as GBK": LATIN1_AS_GBK,
    "GBK read as Latin-1": GBK_AS_LATIN1,
}
# Mails whose own bytes carry the damage: no decoding can undo it.
UNDECODABLE = {
    "must_supply_encoding.eml": "its Subject and Reply-To hold the UTF-8 bytes of U+FFFD "
                                "(EF BF BD) themselves: the sender lost the characters",
    "not_a_mail.eml": "bytes 00-FF four times, no header: not a mail (rejected), so no "
                      "subject or body; any table reads them as symbols",
}

KNOWN = {
    "big5_hkscs.eml": ("升降機壞咗一個禮拜",
                       "投訴內容：\n\n屋邨升降機壞咗成個禮拜，長者上落好辛苦。管理處嘅回覆一直係「跟進中」。"),
    "broken_encoded_words.eml": ("AW: Personaländerung",
                                 "Die Personaländerung im Bürgeramt ist nicht angekommen."),
    "broken_mime.eml": ("小区门禁坏了", "门禁系统坏了两个星期，外来人员随意进出"),
    "encoded_words.eml": ("关于幸福里小区停车难的问题 （再次反映）",
                          "小区只有两百个车位，住户八百户，晚上车辆乱停堵住消防通道。"),
    "gb18030_four_byte.eml": (
        "𠮷野家门口占道经营",
        "反映问题：吉祥路的“𠮷野家”门口占道经营，餐桌摆到人行道上，收费 20€ 起。\n"
        "请城管部门查处。"),
    "gb2312_bulk_reply.eml": ("回复：小区垃圾清运问题",
                              "垃圾还是没有清运，楼道里味道很大，请尽快处理。"),
    "gb2312_with_gbk_chars.eml": (
        "堃园小区烧烤油烟扰民（王喆）",
        "您好：\n\n我叫王喆，住在堃园小区3号楼。楼下烧烤店每晚营业到凌晨两点，油烟和噪音严重扰民，\n"
        "孩子珺珺无法入睡。请有关部门尽快处理。\n\n联系电话：13800138000"),
    "gbk_quoted_printable.eml": (
        "朝阳路红绿灯故障",
        "市民来信：\n\n朝阳路与建设街交叉口的红绿灯坏了三天，早晚高峰车辆拥堵，行人过马路很危险。\n"
        "望尽快修复。\n\n李赟"),
    "german_latin1.eml": (
        "Lärm in der Müllerstraße",
        "Sehr geehrte Damen und Herren,\n\ndie Straßenbahn in der Müllerstraße fährt nachts "
        "sehr laut. Grüße: äöüß ÄÖÜ.\n\nMit freundlichen Grüßen\nJörg Käßler"),
    "html_only.eml": ("菜市场垃圾一周未清运",
                      "尊敬的12345热线：\n\n新华街菜市场周边的垃圾桶已经一周没有清运，\n气味很大，苍蝇很多。"
                      "\n\n请环卫部门 尽快处理。谢谢！"),
    "no_charset_gbk.eml": (
        "公交站牌被撞倒",
        "光明路公交站的站牌昨天被一辆货车撞倒了，倒在人行道上，行人只能绕到机动车道上走，"
        "特别是早上上学的孩子很多，非常危险。希望公交公司和交警部门尽快来处理一下，谢谢。"),
    "no_message_id.eml": ("夜间渣土车噪音", "每晚十一点以后都有渣土车经过和平路，噪音很大。"),
    "raw_8bit_headers.eml": ("自来水管爆裂，门口积水",
                             "早上六点发现人民路口自来水管爆裂，水已经漫到商铺门口，请自来水公司尽快抢修。"),
    "raw_gbk_subject_latin_label.eml": (
        "转发：整体提升企业服务水平",
        "区政务服务中心窗口排队两个小时，取号机经常故障，工作人员态度冷淡。\n希望整体提升企业服务水平。"),
    "reply_netease.eml": ("Re: 井盖缺失", "谢谢回复。但是井盖到现在还没有盖上，晚上很危险。"),
    "reply_original_message.eml": ("回复：堃园小区施工噪音",
                                   "处理结果我不满意，噪音问题依然存在，昨晚十一点还在施工。\n请再派人来看看。"),
    "russian_cp1251_latin_label.eml": (
        "Уличное освещение",
        "Здравствуйте!\n\nНа улице Ленина уже неделю не работает уличное освещение.\n"
        "Прошу принять меры."),
    "russian_koi8r.eml": (
        "Не работает освещение",
        "Здравствуйте!\n\nНа улице Ленина уже неделю не работает уличное освещение.\n"
        "Прошу принять меры."),
    "split_multibyte_words.eml": ("整体提升企业服务水平 供暖不热",
                                  "小区暖气片一直不热，室温只有十二度。"),
    "wrong_label_gbk.eml": (
        "complaint",
        "东风小区二期的电梯从上周开始频繁故障，已经有三位老人被困在电梯里，物业公司一直推说在等配件。"
        "请市场监管部门督促物业尽快维修，并检查电梯的安全状况。"),
}
SENDERS = {  # display names decoded by the same decision
    "raw_gbk_subject_latin_label.eml": "张伟",
    "german_latin1.eml": "Jörg Käßler",
    "russian_koi8r.eml": "Иван Петров",
    "broken_encoded_words.eml": "ABC / 123 / Wetterau West / ABC",
    "split_multibyte_words.eml": "市民服务热线",
    "gb2312_bulk_reply.eml": "周敏",
}


def _mails() -> list[Path]:
    found = sorted(FIXTURES.glob("*.eml"))
    if SHARED.is_dir():
        found += sorted(p for p in SHARED.rglob("*") if p.is_file())
    return found


def texts_of(data: bytes) -> dict[str, str]:
    """Every piece of text a person reads in the mail: subject, sender names, bodies
    (the normalizer's body, and every text part, filtered mail included)."""
    msg = parse_message(data)
    hint = text_charset(msg)
    texts = {"subject": header_text(msg, "subject", hint)}
    for header in ("from", "reply-to", "to"):
        for index, (name, _) in enumerate(addresses(msg, header, hint)):
            texts[f"{header}[{index}]"] = name
    for index, text in enumerate(iter_texts(msg)):
        texts[f"part[{index}]"] = text
    return texts


def mojibake_in(text: str) -> list[str]:
    return [f"{kind}: {m.group(0)!r}" for kind, pattern in MOJIBAKE.items()
            for m in [pattern.search(text)] if m]


@pytest.mark.parametrize("path", _mails(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_mojibake_in_any_subject_name_or_body(path: Path) -> None:
    if path.name in UNDECODABLE:
        pytest.skip(UNDECODABLE[path.name])
    found = {where: mojibake_in(text) for where, text in texts_of(path.read_bytes()).items()}
    assert not {where: marks for where, marks in found.items() if marks}


def test_the_undecodable_mail_is_damaged_in_its_own_bytes() -> None:
    """The one exception: U+FFFD is in the bytes the sender sent, not made by us."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data/email is not there")
    path = next(SHARED.rglob("must_supply_encoding.eml"))
    subject = next(line for line in path.read_bytes().splitlines()
                   if line.startswith(b"Subject:"))
    assert "\ufffd".encode() in subject


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_fixture_subject_and_body_are_exact(name: str) -> None:
    draft = complaint(name)
    assert (draft.subject, draft.body) == KNOWN[name]


@pytest.mark.parametrize("name", sorted(SENDERS))
def test_fixture_sender_names_are_exact(name: str) -> None:
    assert complaint(name).reporter.name == SENDERS[name]


def test_every_complaint_fixture_has_a_known_answer() -> None:
    from tests.test_email_normalize import EXPECTED

    assert {n for n, kind in EXPECTED.items() if kind == "complaint"} == set(KNOWN) | {
        "nested_multipart.eml"}  # its attachments are checked in test_email_normalize


@pytest.mark.parametrize(("pattern", "sample"), [
    (LATIN1_AS_GBK, "M\u9ef1chen"), (LATIN1_AS_GBK, "Gr\ue3eae"),
    (GBK_AS_LATIN1, "×ª·¢£ºÕûÌåÌáÉýÆóÒµ"), (GBK_AS_LATIN1, "ÔëÒô"), (GBK_AS_LATIN1, "cafÃ©"),
])
def test_the_patterns_catch_what_they_name(pattern: re.Pattern[str], sample: str) -> None:
    assert pattern.search(sample)


@pytest.mark.parametrize("clean", [
    "Grüße aus Köln: äöüß ÄÖÜ", "Formação Verão", "¡Hola! ¿Qué tal?", "室温 20°C", "iPhone手机",
    "转发：整体提升企业服务水平", "Здравствуйте",
])
def test_the_patterns_pass_clean_text(clean: str) -> None:
    assert mojibake_in(clean) == []


def test_the_normalizer_body_of_filtered_fixtures_is_clean_too() -> None:
    for name in ("newsletter.eml", "auto_submitted_bulk.eml", "dsn_gbk.eml"):
        draft = normalize(raw_of((FIXTURES / name).read_bytes()), NormalizerContext("mail"))
        assert mojibake_in(draft.subject + draft.body) == [], name
