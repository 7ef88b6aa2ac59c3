"""Feed parsing and the feed_entry normalizer, on messy fixture feeds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from adapters.opinion.feeds import FeedOptions, conditional_headers, entry_records
from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from gateway.model.validation import validate_draft
from normalizers.opinion.feed_entry import (
    ENTRY_TYPE,
    FeedUnreadable,
    ParsedFeed,
    entry_ref,
    normalize,
    parse_feed,
)

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
TZ = ZoneInfo("Asia/Shanghai")
FEED_URL = "http://feeds.example.org/board.xml"


def _feed(name: str) -> ParsedFeed:
    return parse_feed((FEEDS / name).read_bytes(), None, FEED_URL)


def _drafts(name: str, **options: object) -> list[ComplaintDraft]:
    ctx = NormalizerContext("forum", TZ, options)
    drafts = [normalize(raw, ctx) for raw in entry_records("forum", _feed(name), 100)]
    for draft in drafts:
        validate_draft(draft)
    return drafts


def test_rss2_entries_become_opinion_drafts() -> None:
    drafts = {d.source_ref: d for d in _drafts("rss2.xml")}
    noise = drafts["forum-1001"]
    assert noise.channel == "opinion" and noise.source == "forum"
    assert noise.subject == "正阳路夜间施工噪音扰民"
    assert noise.body == ("城阳区正阳路工地每晚 11 点后还在打桩，严重影响休息。\n\n"
                          "希望有关部门管一管。")
    assert noise.reporter.handle == "夜猫子" and noise.reporter.name is None
    assert noise.post is not None
    assert noise.post.url == "http://forum.example.org/thread-1001-1-1.html"
    assert noise.post.site == "城阳社区论坛 - 民生热帖"
    assert noise.post.published_at == datetime(2020, 11, 2, 14, 15, tzinfo=UTC)
    assert noise.reported_at == noise.post.published_at
    assert noise.post.reply_count == 12
    assert noise.tags == ["噪音", "施工"]
    # No GUID: the link is the source_ref; the author's e-mail address is not kept.
    manhole = drafts["http://forum.example.org/thread-1002-1-1.html"]
    assert manhole.reporter.handle == "路过的人"
    assert "@" not in manhole.model_dump_json()
    assert manhole.subject == "春阳路井盖缺失 & 无人修复"
    assert manhole.body == "春阳路与长城路路口的井盖缺失已经一周，\n晚上很危险。"


def test_atom_html_title_text_content_and_relative_links() -> None:
    drafts = _drafts("atom.xml")
    assert [d.source_ref for d in drafts] == [  # oldest first: the document lists newest first
        "tag:gov.example.org,2020:msg-7790", "tag:gov.example.org,2020:msg-7781"]
    rubbish, lift = drafts
    assert lift.subject == "关于城阳街道老旧小区加装电梯的建议"  # markup in a type="html" title
    assert lift.body == "我们小区建于 1995 年，六层无电梯。\n\n老人上下楼很困难，建议加装电梯。"
    assert lift.reporter.handle == "王先生" and lift.tags == ["城建"]
    assert rubbish.body == "垃圾桶满了两天没人清运 <不是标签>。"  # type="text": not markup
    assert rubbish.post is not None
    assert rubbish.post.url == "http://feeds.example.org/hdjl/msg/2020/7790.html"
    assert rubbish.reporter.handle is None and rubbish.reporter.anonymous


@pytest.mark.parametrize(("name", "version", "count"), [
    ("rss2.xml", "rss20", 3), ("atom.xml", "atom10", 2), ("rss1.rdf", "rss10", 1),
    ("rss091.xml", "rss091n", 1), ("big5.xml", "rss20", 2), ("gb2312_lies.xml", "rss20", 2),
    ("gbk_undeclared.xml", "rss20", 2), ("big5_labelled_gb2312.xml", "rss20", 1),
    ("bom_blank.xml", "rss20", 1), ("entities.xml", "rss20", 1), ("missing.xml", "rss20", 4),
    ("malformed.xml", "rss20", 2),
])
def test_every_messy_feed_is_read(name: str, version: str, count: int) -> None:
    feed = _feed(name)
    assert (feed.version, len(feed.entries)) == (version, count)


@pytest.mark.parametrize(("name", "title", "text"), [
    ("big5.xml", "繁體論壇", "樓下食肆抽風機噪音很大，㗎啦都聽唔到。"),
    ("big5_labelled_gb2312.xml", "繁體論壇", "臺灣大道路燈損壞已經三天"),
    ("gb2312_lies.xml", "声明 GB2312 实为 UTF-8", "雨后朱镕基路（化名）积水没过脚踝，堃先生"),
    ("gbk_undeclared.xml", "简体论坛", "雨后朱镕基路（化名）积水没过脚踝，堃先生"),
    ("bom_blank.xml", "BOM 和空行", "晚上回家找不到车位"),
])
def test_legacy_and_lying_encodings(name: str, title: str, text: str) -> None:
    assert _feed(name).title == title
    assert any(text in d.body for d in _drafts(name))


def test_entities_html_and_numeric() -> None:
    (draft,) = _drafts("entities.xml")
    assert draft.subject == "Café 门口占道经营 — 已三个月"
    assert draft.body == "门口摆摊…严重影响通行 © 居民"
    assert draft.post is not None and draft.post.url == "http://forum.example.org/t/55?a=1&b=2"


def test_missing_guids_dates_and_titles() -> None:
    feed = _feed("missing.xml")
    refs = [entry_ref(item) for item in feed.entries]
    assert refs[2] == "http://board.example.org/p/9"  # no GUID: the link
    assert refs[0].startswith("sha256:") and refs[1].startswith("sha256:")  # neither: a hash
    assert refs[0] == entry_ref(_feed("missing.xml").entries[0])  # stable
    assert len(set(refs)) == 4
    ctx = NormalizerContext("board", TZ)
    records = {r.source_ref: r for r in entry_records("board", feed, 100)}
    body_only = normalize(records[refs[0]], ctx)
    assert body_only.subject == "只有内容没有标题、链接、GUID 和日期：河套街道路面塌陷。"
    assert body_only.post is not None and body_only.post.url == "http://board.example.org/"
    assert body_only.reported_at == body_only.received_at  # no date: when it was received
    title_only = normalize(records[refs[1]], ctx)
    assert title_only.body == "只有标题：上马街道停水"
    assert title_only.post is not None and title_only.post.published_at is None  # bad date
    zone_less = normalize(records[refs[2]], ctx)
    assert zone_less.post is not None  # "2020-11-02 09:30" without a zone is local time
    assert zone_less.post.published_at == datetime(2020, 11, 2, 9, 30, tzinfo=TZ)
    with pytest.raises(Rejected) as caught:
        normalize(records[refs[3]], ctx)  # an empty <item/>
    assert caught.value.errors[0].field == "entry.content"


def test_malformed_feed_yields_what_is_there() -> None:
    feed = _feed("malformed.xml")
    assert feed.warning is not None  # feedparser's "bozo" reason is kept for the log
    drafts = _drafts("malformed.xml")
    assert [d.subject for d in drafts] == ["夏庄街道广场舞噪音", "惜福镇街道 自来水浑浊"]
    assert drafts[1].body == "水是黄色的\n已经两天"


@pytest.mark.parametrize("name", ["not_a_feed.html", "empty.xml"])
def test_unreadable_documents_say_why(name: str) -> None:
    with pytest.raises(FeedUnreadable, match=r"RSS|empty"):
        _feed(name)
    with pytest.raises(FeedUnreadable):
        parse_feed(b"\x00\x01\x02 binary garbage \xff\xfe")


def test_duplicate_guids_in_one_feed_yield_one_record() -> None:
    doubled = (FEEDS / "rss2.xml").read_text().replace("</channel>", """
      <item><title>again</title><guid isPermaLink="false">forum-1001</guid></item></channel>""")
    feed = parse_feed(doubled.encode(), None, FEED_URL)
    refs = [r.source_ref for r in entry_records("forum", feed, 100)]
    assert len(feed.entries) == 4 and sorted(refs) == sorted(set(refs)) and len(refs) == 3


def test_entry_records_take_the_newest_then_order_oldest_first() -> None:
    records = entry_records("forum", _feed("rss2.xml"), 2)
    assert [r.source_ref for r in records] == [
        "http://forum.example.org/thread-1002-1-1.html", "forum-1001"]
    item = json.loads(records[0].payload)
    assert records[0].content_type == ENTRY_TYPE
    assert item["feed"]["url"] == FEED_URL and item["entry"]["author"] == "路过的人"


def test_normalizer_reads_a_whole_feed_file_and_site_option() -> None:
    raw = RawRecord(channel="opinion", source="cli", source_ref="rss2.xml",
                    payload=(FEEDS / "rss2.xml").read_bytes(), content_type="application/xml",
                    received_at=datetime.now(UTC))
    draft = normalize(raw, NormalizerContext("cli", TZ, {"site": "城阳论坛"}))
    assert draft.subject == "正阳路夜间施工噪音扰民"
    assert draft.post is not None and draft.post.site == "城阳论坛"
    broken = RawRecord(channel="opinion", source="cli", source_ref="x", payload=b"{not json",
                       content_type=ENTRY_TYPE, received_at=datetime.now(UTC))
    with pytest.raises(Rejected):
        normalize(broken, NormalizerContext("cli", TZ))


def test_long_bodies_are_clipped_and_future_dates_clamped() -> None:
    text = "很长的内容。" * 2000
    future = "Mon, 01 Jan 2035 00:00:00 +0800"
    doc = f"""<rss version="2.0"><channel><title>t</title><item><title>长帖</title>
      <link>http://x.example.org/1</link><pubDate>{future}</pubDate>
      <description>{text}</description></item></channel></rss>"""
    (raw,) = entry_records("forum", parse_feed(doc.encode()), 10)
    draft = normalize(raw, NormalizerContext("forum", TZ, {"max_body_chars": 500}))
    assert len(draft.body) == 500 and draft.body.endswith("…")
    assert draft.post is not None and draft.post.published_at is not None
    assert draft.reported_at == draft.received_at  # a post "from the future" is not
    validate_draft(draft)


def test_conditional_headers_only_for_the_same_url() -> None:
    state = {"url": FEED_URL, "etag": '"v1"', "last_modified": "Wed, 04 Nov 2020 10:00:00 GMT"}
    assert conditional_headers(FEED_URL, state) == {
        "If-None-Match": '"v1"', "If-Modified-Since": "Wed, 04 Nov 2020 10:00:00 GMT"}
    assert conditional_headers("http://other.example.org/feed", state) == {}
    assert conditional_headers(FEED_URL, None) == {}
    assert conditional_headers(FEED_URL, {"url": FEED_URL, "etag": None}) == {}


def test_feed_options_are_strict_with_safe_defaults() -> None:
    options = FeedOptions.model_validate({"url": FEED_URL})
    assert options.poll_interval_s >= 60 and options.timeout_s <= 60
    assert options.min_host_interval_s > 0 and options.respect_robots
    assert options.max_bytes <= 10 * 1024 * 1024
    for bad in ({"url": "ftp://x"}, {"url": FEED_URL, "unknown": 1},
                {"url": FEED_URL, "relevance": {"include": [""]}}, {}):
        with pytest.raises(ValueError):
            FeedOptions.model_validate(bad)
