"""Text normalization, shingles and MinHash on Chinese and mixed text; reporter keys and
fingerprints of drafts."""

from __future__ import annotations

import random
import unicodedata
from datetime import UTC, datetime

import pytest

from gateway.dedup.deduplicator import Deduplicator, reporter_keys
from gateway.dedup.similarity import (
    BANDS,
    MAX_CHARS,
    NUM_PERM,
    TextProfile,
    band_keys,
    compact,
    jaccard,
    key_hash,
    minhash,
    minhash_text,
    nfkc,
    similarity,
    strip_text,
)
from gateway.model.schema import CallInfo, ComplaintDraft, Location, PostInfo, Reporter
from gateway.support.config import DEFAULT_BOILERPLATE, DedupConfig

PROFILE = TextProfile(3, DEFAULT_BOILERPLATE)
NOISE = "城阳区正阳路工地每天夜里施工到凌晨2点，噪音很大，老人孩子都睡不好觉，请相关部门尽快处理。"
LAMP = "春阳路小学门口的路灯已经坏了一个多月，晚上接孩子放学路上很黑，存在安全隐患。"


@pytest.mark.parametrize(("text", "expected"), [
    ("ＡＢＣ，１２３ 您好！", "abc123您好"),  # full width → half width, case folded
    ("G107国道K1区段 WiFi信号差", "g107国道k1区段wifi信号差"),
    ("\n\t\t  小区\u3000门口\xa0垃圾 \r\n", "小区门口垃圾"),  # scraped whitespace
    ("“噪音”、《通知》——（请）【尽快】…！？", "噪音通知请尽快"),  # CJK punctuation
    ("电话:138-0013-8000; e-mail: A.B@X.CN", "电话13800138000emailabxcn"),
    ("①②③ Ⅳ", "123iv"),  # NFKC compatibility forms
    ("", ""),
])
def test_strip_text(text: str, expected: str) -> None:
    assert strip_text(text) == expected


def test_nfkc_is_unicodedata_nfkc() -> None:
    """The shortcut (ASCII forms of full-width punctuation first) gives exactly NFKC: on
    every character of the BMP, and on mixes of those forms with combining marks (which
    compose with what precedes them) and Chinese text."""
    every = "".join(chr(c) for c in range(0x20, 0x10000) if not 0xD800 <= c < 0xE000)
    assert nfkc(every) == unicodedata.normalize("NFKC", every)
    pieces = [*"ＡａＥｅ１…㎏℡™①\u3000 e中，？！", *map(chr, range(0x300, 0x370))]
    rng = random.Random(7)
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 7)))
        assert nfkc(text) == unicodedata.normalize("NFKC", text), ascii(text)


def test_boilerplate_removed_after_normalizing() -> None:
    plain = PROFILE.normalize("路灯坏了")
    assert plain == "路灯坏了"
    for dressed in ("您好，路灯坏了，谢谢！", "尊敬的领导：你们好！路灯坏了。非常感谢。",
                    "请问 路灯坏了？谢谢您", "各位领导你好:\n路灯坏了\n此致敬礼"):
        assert PROFILE.normalize(dressed) == plain, dressed


def test_boilerplate_is_configurable_and_longest_first() -> None:
    custom = TextProfile(3, ["你好", "你们好", "ＴＨＡＮＫＳ"])
    assert custom.normalize("你们好，thanks，噪音扰民") == "噪音扰民"  # not "们好…"
    assert TextProfile(3, []).normalize("您好，噪音扰民") == "您好噪音扰民"


def test_normalize_keeps_at_most_max_chars() -> None:
    long = "噪" * (MAX_CHARS + 50)
    assert len(PROFILE.normalize(long)) == MAX_CHARS
    assert len(PROFILE.normalize(long, None)) == MAX_CHARS + 50


def test_shingles_of_chinese_and_mixed_text() -> None:
    assert PROFILE.shingles("路灯不亮了") == {"路灯不", "灯不亮", "不亮了"}
    assert PROFILE.shingles("k1区g107") == {"k1区", "1区g", "区g1", "g10", "107"}
    assert PROFILE.shingles("路灯") == {"路灯"}
    assert PROFILE.shingles("") == set()
    assert TextProfile(2).shingles("路灯不亮") == {"路灯", "灯不", "不亮"}


def test_minhash_is_deterministic_and_estimates_jaccard() -> None:
    a = PROFILE.shingles(PROFILE.normalize(NOISE))
    b = PROFILE.shingles(PROFILE.normalize(NOISE.replace("老人孩子", "全家人")))
    values = minhash(a)
    assert values.shape == (NUM_PERM,)
    assert (values == minhash(set(a))).all()  # same set, same signature, every time
    exact = jaccard(a, b)
    estimate = similarity(compact(values), compact(minhash(b)))
    assert 0.6 < exact < 0.9
    assert abs(estimate - exact) < 0.15
    unrelated = similarity(compact(values), compact(minhash(PROFILE.shingles(LAMP))))
    assert unrelated < 0.1


def test_band_keys_find_near_identical_text_only() -> None:
    def keys(text: str) -> set[int]:
        return set(band_keys(minhash(PROFILE.shingles(PROFILE.normalize(text)))))

    original = keys(NOISE)
    assert len(original) == BANDS
    assert keys("您好！" + NOISE.replace("2", "２") + "谢谢") == original
    assert original & keys(NOISE.replace("噪音很大", "噪声很大"))  # a typo still shares bands
    assert not original & keys(LAMP)


def test_similarity_of_compact_signatures() -> None:
    sig = compact(minhash({"路灯不", "灯不亮"}))
    assert len(sig) == 2 * NUM_PERM
    assert similarity(sig, sig) == 1.0
    assert similarity(sig, b"") == 0.0 and similarity(b"", b"") == 0.0


def test_key_hash_is_stable_and_signed_64_bit() -> None:
    value = key_hash("tel:+8613800138000")
    assert value == key_hash("tel:+8613800138000")
    assert -(2 ** 63) <= value < 2 ** 63
    assert value != key_hash("tel:+8613800138001")


# -- drafts --------------------------------------------------------------------------------


def draft(body: str = NOISE, **fields: object) -> ComplaintDraft:
    at = datetime(2024, 5, 6, 1, 0, tzinfo=UTC)
    values: dict[str, object] = {
        "channel": "web", "source": "web", "source_ref": "r-1", "received_at": at,
        "reported_at": at, "body": body, **fields,
    }
    return ComplaintDraft.model_validate(values)


def test_reporter_keys_across_channels() -> None:
    assert reporter_keys(draft(reporter=Reporter(phone="+8613800138000",
                                                 email=" Huang.Li@Example.COM "))) == [
        "tel:+8613800138000", "mail:huang.li@example.com"]
    call = CallInfo(call_id="c-1", caller="+8653288886666")
    assert reporter_keys(draft(channel="phone", call=call)) == ["tel:+8653288886666"]
    post = PostInfo(url="https://bbs.example.cn/t/1", site="BBS.example.cn")
    assert reporter_keys(draft(channel="opinion", post=post,
                               reporter=Reporter(handle="LaoZhang"))) == [
        "handle:bbs.example.cn/laozhang"]
    assert reporter_keys(draft(reporter=Reporter(anonymous=True))) == []


def test_fingerprint_of_a_draft() -> None:
    dedup = Deduplicator(DedupConfig())
    plain = dedup.fingerprint(draft(subject="噪音", location=Location(address="正阳路18号")))
    dressed = dedup.fingerprint(draft(body="您好：" + NOISE.replace("2", "２") + "谢谢！",
                                      subject="噪音！", location=Location(address="正阳路１８号")))
    assert plain.content_hash == dressed.content_hash
    assert plain.signature == dressed.signature and plain.bands == dressed.bands
    assert plain.length == len(PROFILE.normalize(NOISE + "正阳路18号"))
    assert plain.at == 1714957200.0
    address = Location(address="正阳路18号")
    other_subject = dedup.fingerprint(draft(subject="扰民", location=address))
    assert other_subject.content_hash != plain.content_hash
    assert other_subject.signature == plain.signature  # the subject is not compared
    with_photo = draft(subject="噪音", location=Location(address="正阳路18号"))
    with_photo.attach(b"\x89PNG...", "a.png", "image/png")
    assert dedup.fingerprint(with_photo).content_hash != plain.content_hash
    empty = dedup.fingerprint(draft(body="！！！"))
    assert (empty.signature, empty.bands, empty.length) == (b"", (), 0)


def test_fingerprint_uses_the_configured_profile() -> None:
    bigrams = Deduplicator(DedupConfig(shingle_size=2, boilerplate=[]))
    fp = bigrams.fingerprint(draft(body="您好，路灯不亮"))
    assert fp.length == len("您好路灯不亮")


@pytest.mark.parametrize("text", ["路灯不亮了", "路灯", "k1区g107号门前的下水道堵塞三天了", "a"])
def test_vectorized_minhash_equals_the_shingle_set_one(text: str) -> None:
    """The fast path (one numpy pass over the text) and the reference (hash each shingle)
    must agree, or stored band keys would not match what a replica computes."""
    normalized = PROFILE.normalize(text)
    assert list(minhash_text(normalized, 3)) == list(minhash(PROFILE.shingles(normalized)))


def test_signatures_are_pinned_across_versions() -> None:
    """Stored signatures and band keys are compared with new ones, across restarts and
    replicas of different versions: a faster MinHash must give exactly these values."""
    values = minhash_text("小区门口共享单车堆放严重影响通行", 3)
    assert list(map(int, values[:6])) == [614838392, 213516939, 132576669, 445807618,
                                          133592758, 1385896901]
    assert band_keys(values)[:4] == [710905487, -1294716772, 1201393010, -1104208217]
