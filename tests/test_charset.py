"""Bytes → text: the bytes win over the label (normalizers/common/charset.py)."""

from __future__ import annotations

import codecs

import pytest

from normalizers.common.charset import charset_param, codec_name, decide, declared_charset, decode
from normalizers.common.plausibility import PLAUSIBLE, implausibility

NOISE = "城阳区正阳路夜间施工噪音扰民，居民无法休息。"
BIG5_TEXT = "臺灣大道路燈損壞已經三天，晚上行人通行困難，請儘快維修。"


@pytest.mark.parametrize(("label", "codec"), [
    ("gb2312", "gb18030"), ("GBK", "gb18030"), ("x-gbk", "gb18030"), ("cp936", "gb18030"),
    ("GB18030", "gb18030"), ("big5", "big5hkscs"), ("Big5-HKSCS", "big5hkscs"),
    ("cp950", "big5hkscs"), ("ISO-8859-1", "cp1252"), ("us-ascii", "cp1252"),
    ("utf8", "utf-8"), ("'UTF-8'", "utf-8"), ("shift_jis", "shift_jis"),
    ("no-such-charset", None), (None, None), ("", None),
])
def test_labels_widen_to_their_superset(label: str | None, codec: str | None) -> None:
    assert codec_name(label) == codec


def test_charset_param_and_declarations() -> None:
    assert charset_param('text/html; charset="GBK"') == "GBK"
    assert charset_param("application/rss+xml;charset=gb2312") == "gb2312"
    assert charset_param("text/html") is None
    assert charset_param(None) is None
    assert declared_charset(b'<?xml version="1.0" encoding="big5"?><rss/>') == "big5"
    assert declared_charset(b'<html><head><meta charset="gb2312">') == "gb2312"
    assert declared_charset(
        b'<meta http-equiv="Content-Type" content="text/html; charset=GBK">') == "GBK"
    assert declared_charset(b"<html><body>no declaration</body></html>") is None


def test_utf8_bytes_win_over_a_gb2312_label() -> None:
    page = f'<html><head><meta charset="gb2312"></head><body>{NOISE}</body></html>'
    decoded = decode(page.encode("utf-8"), "text/html; charset=gb2312")
    assert NOISE in decoded.text
    assert (decoded.encoding, decoded.how, decoded.declared) == ("utf-8", "utf-8", "gb2312")


def test_gb2312_label_reads_gbk_and_gb18030_characters() -> None:
    # 镕 and 堃 are in GBK but not in GB2312; 𠮷 needs GB18030's four-byte form.
    text = "朱镕基路，堃先生，𠮷野家。" + NOISE
    decoded = decode(text.encode("gb18030"), "text/html; charset=gb2312")
    assert decoded.text == text
    assert (decoded.encoding, decoded.how) == ("gb18030", "declared")


def test_big5_label_reads_hkscs_characters() -> None:
    text = "樓下食肆抽風機噪音很大，㗎啦都聽唔到。" + BIG5_TEXT
    decoded = decode(f'<?xml version="1.0" encoding="big5"?><t>{text}</t>'.encode("big5hkscs"))
    assert text in decoded.text
    assert decoded.encoding == "big5hkscs"


def test_big5_bytes_labelled_gb2312_are_detected() -> None:
    data = f'<?xml version="1.0" encoding="gb2312"?><t>{BIG5_TEXT}</t>'.encode("big5")
    assert data.decode("gb18030")  # the lie decodes without error: only detection helps
    decoded = decode(data)
    assert BIG5_TEXT in decoded.text
    assert (decoded.encoding, decoded.how) == ("big5hkscs", "detected")


def test_gbk_labelled_big5_is_detected_the_other_way() -> None:
    data = f'<meta charset="big5"><p>{NOISE}</p>'.encode("gbk")
    assert NOISE in decode(data).text


def test_undeclared_legacy_bytes_are_detected() -> None:
    decoded = decode((NOISE * 3).encode("gbk"))
    assert decoded.text == NOISE * 3
    assert decoded.how == "detected"


def test_a_wrong_utf8_header_does_not_win_over_gbk_bytes() -> None:
    decoded = decode(NOISE.encode("gbk"), "text/html; charset=utf-8")
    assert decoded.text == NOISE


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
def test_byte_order_marks_decide(codec: str) -> None:
    decoded = decode(f'<?xml version="1.0" encoding="gb2312"?><t>{NOISE}</t>'.encode(codec))
    assert decoded.how == "bom"
    assert decoded.text.startswith("<?xml")
    assert NOISE in decoded.text


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_wide_xml_without_a_bom(codec: str) -> None:
    decoded = decode(f'<?xml version="1.0"?><t>{NOISE}</t>'.encode(codec))
    assert decoded.encoding == codec
    assert NOISE in decoded.text


def test_latin1_label_reads_windows1252_quotes() -> None:
    data = "“smart” quotes – café".encode("cp1252")
    assert decode(data, "text/plain; charset=iso-8859-1").text == "“smart” quotes – café"


def test_ascii_and_empty() -> None:
    assert decode(b"plain ascii", "text/plain; charset=gb2312").text == "plain ascii"
    assert decode(b"").text == ""


def test_undecodable_bytes_still_give_text() -> None:
    data = codecs.BOM_UTF8[:2] + bytes(range(128, 256)) * 4
    decoded = decode(data)
    assert isinstance(decoded.text, str) and decoded.text


def test_short_gb_text_keeps_its_label() -> None:
    """Two or three characters decode validly as Big5 too: the label wins below the floor."""
    for word in ("噪音", "投诉", "关于噪音"):
        assert decode(word.encode("gbk"), "text/plain; charset=gb2312").text == word


# -- issue 17: one decision by plausibility ---------------------------------------------------

GERMAN = "Sehr geehrte Damen und Herren, die Straßenbahn in der Müllerstraße ist laut: äöüß."
RUSSIAN = "Здравствуйте! На улице Ленина уже неделю не работает уличное освещение."


@pytest.mark.parametrize(("text", "codec", "label", "hint"), [
    ("转发：整体提升企业服务水平", "gbk", None, "iso-8859-1"),  # raw header, Latin mail
    ("转发：整体提升企业服务水平", "gbk", None, "us-ascii"),
    ("王喆", "gbk", None, None), ("刘师傅", "gbk", None, "iso-8859-1"),
    (GERMAN, "latin-1", "iso-8859-1", None), ("äöüß", "latin-1", "iso-8859-1", None),
    ("Grüße aus Köln", "latin-1", None, "gb2312"), ("Formação Verão", "latin-1", None, None),
    (RUSSIAN, "koi8-r", "koi8-r", None), (RUSSIAN, "koi8-r", None, None),
    (RUSSIAN, "cp1251", "iso-8859-1", None), ("Привет", "cp1251", None, None),
    ("路燈損壞", "big5", None, None), ("升降機壞咗", "big5hkscs", "big5", None),
    ("このメールはテスト用です。", "shift_jis", None, None),
    ("대부분의 마찬가지로, 우리는 믿습니다.", "euc-kr", None, None),
])
def test_the_label_wins_when_plausible_an_alternative_when_clearly_more(
    text: str, codec: str, label: str | None, hint: str | None,
) -> None:
    assert decide(text.encode(codec), label, hint).text == text


def test_a_plausible_label_is_kept_and_said_so() -> None:
    decoded = decide(GERMAN.encode("latin-1"), "iso-8859-1")
    assert (decoded.encoding, decoded.how) == ("cp1252", "declared")
    names = decide("堃园小区（王喆）".encode("gbk"), "gb2312")  # rare names: still plausible
    assert (names.text, names.how) == ("堃园小区（王喆）", "declared")


def test_gbk_once_read_as_latin1_and_saved_as_utf8_is_read_back() -> None:
    double = "大家說英語 每日聽MP3".encode("big5").decode("latin-1").encode("utf-8")
    decoded = decide(double, None)
    assert (decoded.text, decoded.how) == ("大家說英語 每日聽MP3", "repaired")
    assert decide("Grüße".encode(), None).text == "Grüße"  # real UTF-8 Latin stays


def test_a_cut_off_character_is_dropped_not_shown_as_a_replacement() -> None:
    data = "城阳区正阳路夜间施工噪音".encode("gbk")[:-1]
    assert decide(data, "gb2312").text == "城阳区正阳路夜间施工噪"


@pytest.mark.parametrize(("clean", "wrong"), [
    ("转发：整体提升企业服务水平", "×ª·¢£ºÕûÌåÌáÉýÆóÒµ·þÎñË®Æ½"),
    ("äöüß", "噈晧"), ("Grüße aus Köln", "Gr\ue3eae aus K鰈n"), ("Привет", "рПХБЕР"),
    ("王喆", "Нх†ґ"), ("张伟", "ÕÅÎ°"), ("路燈損壞", "몰풭톖홢"), ("噪音", "婑秞"),
])
def test_implausibility_ranks_the_right_reading_first(clean: str, wrong: str) -> None:
    assert implausibility(clean) <= PLAUSIBLE
    assert implausibility(clean) < implausibility(wrong)
