"""Site definitions: the shipped examples read their fixture pages, bad definitions are
reported whole, and the html_page normalizer reads detail pages (selectors or generic)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from adapters.opinion.sites import (
    SITE_RESOURCE,
    ListPage,
    extract_list,
    load_site,
    parse_count,
    parse_site,
    read_html,
    site_path,
)
from gateway.model.errors import ConfigError, Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from gateway.model.validation import validate_draft
from normalizers.opinion.html_page import normalize

ROOT = Path(__file__).parent.parent
HTML = Path(__file__).parent / "fixtures" / "html"
SHARED = ROOT.parent / "shared" / "data" / "html"
TZ = ZoneInfo("Asia/Shanghai")
RECEIVED = datetime(2020, 11, 5, 12, 0, tzinfo=TZ)
BASE = "http://board.example.org/forum/"


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """Definitions are named as config does (``discuz_forum``): relative to the repository."""
    monkeypatch.chdir(ROOT)


def _list(definition: str, fixture: str, url: str = BASE + "list.html", page: int = 1) -> ListPage:
    site = load_site(definition)
    return extract_list(site, read_html((HTML / fixture).read_bytes()), url, page, url)


def _fields(listing: ListPage, *keys: str) -> list[tuple[Any, ...]]:
    return [tuple(item.fields[k] for k in keys) for item in listing.items]


@pytest.mark.parametrize("path", sorted((ROOT / "config" / "sites").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_definition_is_valid(path: Path) -> None:
    site = load_site(path)
    assert site.name == path.stem
    assert site_path(site.name) == Path("config/sites") / path.name


def test_discuz_forum_list_pages() -> None:
    first = _list("discuz_forum", "discuz/forum-9-1.html")
    assert [i.url for i in first.items] == [  # the pinned stickthread is not an item
        BASE + "thread-2005-1-1.html", BASE + "thread-2004-1-1.html",
        BASE + "thread-2003-1-1.html"]
    assert _fields(first, "title", "author", "published", "reply_count", "view_count") == [
        ("正阳路夜市油烟扰民", "撅撅撅", "2020-8-2", 22, 1171),  # from <span title=…>3 小时前
        ("城阳街道停水没有提前通知", "灭世狂魔シ", "2020-7-30", 1, 149),
        ("长城路早高峰堵车严重", "老司机", "2020-7-19", 8, 960),
    ]
    assert first.next_url == BASE + "forum-9-2.html"
    second = _list("discuz_forum", "discuz/forum-9-2.html", BASE + "forum-9-2.html", 2)
    assert _fields(second, "title", "reply_count", "view_count") == [
        ("【求助】驾照换证流程", 3, 88), ("小区垃圾分类桶被占用", 12000, 34000)]
    assert second.next_url is None


def test_tieba_list_pages() -> None:
    first = _list("tieba", "tieba/list-1.html", "http://tieba.example.org/f?kw=x")
    assert [i.url for i in first.items] == [
        "http://tieba.example.org/p/6855574054", "http://tieba.example.org/p/6855000001",
        "http://tieba.example.org/p/6800000002"]  # the pinned thread_top is not an item
    assert _fields(first, "title", "author", "published", "reply_count", "summary") == [
        ("城阳区夏庄街道水管爆裂", "夏庄居民小王", "16:09", 5,
         "夏庄街道源头社区水管爆裂，路面全是水"),
        ("城阳万达附近占道经营", "路过", "8-1", 31, "万达门口晚上摆摊的很多"),
        ("有没有人一起打羽毛球", "球友", "7-28", 2, "周末城阳体育中心"),
    ]
    assert first.next_url == "http://tieba.example.org/f?kw=%E5%9F%8E%E9%98%B3&ie=utf-8&pn=50"
    second = _list("tieba", "tieba/list-2.html")
    assert _fields(second, "title", "published") == [("惜福镇路灯坏了一个月", "2019-12")]
    assert second.next_url is None


def test_gov_message_board_list_and_url_pattern() -> None:
    start = "http://gov.example.org/hdjl/qzxx/index.html"
    first = _list("gov_message_board", "gov/index.html", start)
    assert _fields(first, "title", "author", "published", "view_count") == [
        # the full title (the link text is cut short)
        ("关于城阳区正阳路公交站台迁移后老人乘车不便的问题", "张**", "2020-11-04", 135),
        ("建议在春阳路增设人行横道", "李**", "2020-11-03", 88),
        ("上马街道社保卡补办地点", "王**", "2020-11-02", 41),
    ]
    assert first.items[0].url == "http://gov.example.org/hdjl/qzxx/detail-505.html"
    assert first.next_url == "http://gov.example.org/hdjl/qzxx/index_1.html"
    site = load_site("gov_message_board")
    second = extract_list(site, read_html((HTML / "gov/index_1.html").read_bytes()),
                          "http://gov.example.org/hdjl/qzxx/index_1.html", 2, start)
    assert len(second.items) == 2
    assert second.next_url == "http://gov.example.org/hdjl/qzxx/index_2.html"


def test_news_list() -> None:
    listing = _list("news_list", "news/list.html", "http://news.example.org/local/list.html")
    assert [(i.url, i.fields["published"]) for i in listing.items] == [
        ("http://news.example.org/a/2020/1104/3001.html", "11-04 10:20"),
        ("http://news.example.org/a/2020/1103/3000.html", "11-03 16:45")]
    assert listing.next_url == "http://news.example.org/local/list_2.html"


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not here")
@pytest.mark.parametrize(("definition", "sample", "at_least"), [
    ("discuz_forum", "lists/netease_forum/1.html", 30), ("tieba", "lists/tieba/1.html", 30)])
def test_definitions_read_real_saved_pages(definition: str, sample: str, at_least: int) -> None:
    listing = _list(definition, str(SHARED / sample))
    assert len(listing.items) >= at_least
    assert all(i.fields["title"] and i.fields["author"] for i in listing.items)
    assert listing.next_url is not None


def test_counts() -> None:
    assert [parse_count(t) for t in ["1171", "1,024", "1.2万", "3k", "浏览 88 次", "", None,
                                     "无"]] == [1171, 1024, 12000, 3000, 88, None, None, None]


def test_a_bad_definition_lists_every_problem(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "config/sites/discuz_forum.yaml").read_text())
    raw["list"]["item"] = "tbody[id^="
    raw["list"]["title"] = {"selector": "a", "regex": "(unclosed"}
    raw["pagination"] = {"next": "a.nxt", "pattern": "p{page}.html"}
    raw["start_urls"] = ["ftp://example.org/"]
    raw["encoding"] = "no-such-codec"
    raw["surprise"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    text = "\n".join(caught.value.errors)
    for expected in ("list.item: not a valid CSS selector", "list.title.regex",
                     "pagination: ", "either next or pattern", "start_urls",
                     "unknown encoding", "surprise: unknown key"):
        assert expected in text
    assert all(e.startswith(str(path)) for e in caught.value.errors)
    with pytest.raises(ConfigError, match="must contain"):
        parse_site({**raw, "pagination": {"pattern": "p.html"}}, "x")
    with pytest.raises(ConfigError, match="cannot read"):
        load_site(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_site(tmp_path / "broken.yaml")


# -- the html_page normalizer ------------------------------------------------------------


def _record(fixture: str, fields: dict[str, Any], *, page: str = "detail",
            content_type: str = "text/html", url: str = BASE + "post.html") -> RawRecord:
    payload = (HTML / fixture).read_bytes() if page == "detail" else fixture.encode()
    return RawRecord(channel="opinion", source="board", source_ref=url, payload=payload,
                     content_type=content_type, received_at=RECEIVED,
                     metadata={"url": url, "site": None, "page": page, "fields": fields})


def _draft(raw: RawRecord, definition: str | None, **options: Any) -> ComplaintDraft:
    # The adapter hands the parsed definition to the normalizer (HtmlPagesSource.resources).
    resources = {SITE_RESOURCE: load_site(definition)} if definition else {}
    draft = normalize(raw, NormalizerContext("board", TZ, options, resources))
    validate_draft(draft)
    return draft


def test_discuz_thread_first_post_without_noise() -> None:
    fields = {"title": "正阳路夜市油烟扰民", "author": "撅撅撅", "published": "2020-8-2",
              "reply_count": 22, "view_count": 1171}
    draft = _draft(_record("discuz/thread-2005-1-1.html", fields), "discuz_forum")
    assert draft.body == "正阳路夜市每天晚上油烟很大，窗户都不敢开。\n\n希望城管部门来看看。"
    assert draft.subject == "正阳路夜市油烟扰民"
    assert draft.reporter.handle == "撅撅撅" and not draft.reporter.anonymous
    post = draft.post
    assert post is not None
    assert (post.url, post.site, post.author) == (BASE + "post.html", "城阳社区论坛", "撅撅撅")
    assert (post.reply_count, post.view_count) == (22, 1171)
    # The detail page's time is more precise than the list's date.
    assert post.published_at == datetime(2020, 8, 2, 13, 5, 12, tzinfo=TZ)
    assert draft.reported_at == post.published_at


@pytest.mark.parametrize(("fixture", "content_type", "text"), [
    ("discuz/thread-2004-1-1.html", "text/html; charset=gb2312",  # UTF-8 bytes, gb2312 label
     "城阳街道今天早上突然停水，\n没有看到任何通知。老人孩子都没水用。"),
    ("discuz/thread-2003-1-1.html", "text/html",  # GBK bytes, labelled so in <meta>
     "长城路早高峰从七点堵到九点，信号灯配时不合理，建议调整。朱镕基路口（化名）尤其严重。"),
    ("discuz/thread-2003-1-1.html", "text/html; charset=utf-8",  # … and a lying header
     "长城路早高峰从七点堵到九点，信号灯配时不合理，建议调整。朱镕基路口（化名）尤其严重。"),
])
def test_encodings_trust_the_bytes(fixture: str, content_type: str, text: str) -> None:
    draft = _draft(_record(fixture, {"title": "t"}, content_type=content_type), "discuz_forum")
    assert draft.body == text


def test_malformed_markup_still_reads() -> None:
    draft = _draft(_record("discuz/thread-2001-1-1.html", {}), "discuz_forum")
    assert "小区的垃圾分类桶被一楼住户占用放杂物 & 纸箱" in draft.body
    assert "物业说管不了" in draft.body
    assert draft.subject == "小区垃圾分类桶被占用"  # no list title: the page's
    assert draft.post is not None
    assert draft.post.published_at == datetime(2020, 7, 17, 19, 42, 10, tzinfo=TZ)


def test_tieba_first_floor_and_year_less_list_dates() -> None:
    fields = {"title": "城阳万达附近占道经营", "author": "路过", "published": "8-1"}
    draft = _draft(_record("tieba/p-6855000001.html", fields), "tieba")
    assert draft.body == "万达门口晚上摆摊的很多，人行道都走不了。"  # not the second floor
    assert draft.post is not None
    assert draft.post.published_at == datetime(2020, 8, 1, 21, 30, tzinfo=TZ)
    no_detail_time = _record("tieba/p-6855000001.html", fields)
    no_detail_time = RawRecord(**{**no_detail_time.__dict__, "payload": b"<p>x</p>"})
    assert _draft(no_detail_time, "tieba").reported_at == datetime(2020, 8, 1, tzinfo=TZ)


def test_gov_message_without_the_official_reply() -> None:
    fields = {"title": "关于城阳区正阳路公交站台迁移后老人乘车不便的问题", "author": "张**",
              "published": "2020-11-04", "view_count": 135}
    draft = _draft(_record("gov/detail-505.html", fields), "gov_message_board")
    assert draft.body == ("正阳路公交站台向东迁移了 300 米，\n\n"
                          "小区老人走过去要十多分钟，希望在原址保留一个站点。")
    assert "回复" not in draft.body
    assert draft.post is not None and draft.post.site == "城阳区人民政府·区长信箱"
    assert draft.post.published_at == datetime(2020, 11, 4, 9, 12, 33, tzinfo=TZ)
    gb = _draft(_record("gov/detail-503.html", {"title": "t"}), "gov_message_board")
    assert gb.body == "请问上马街道哪里可以补办社保卡？\n\n网上说的地址已经搬走了。"


def test_generic_extraction_without_body_selectors() -> None:
    fields = {"title": "城阳区启动老旧小区改造 涉及 42 个小区", "published": "11-04 10:20"}
    draft = _draft(_record("news/3001.html", fields), "news_list")
    assert draft.body == (
        "记者从城阳区住建局获悉，今年城阳区将对 42 个老旧小区实施改造，涉及居民 1.2 万户。\n"
        "改造内容包括外墙保温、雨污分流、加装电梯和增设停车位等。\n"
        "不少居民表示，希望施工期间合理安排时间，减少噪音影响。")
    assert draft.reporter.handle == "记者 刘记者"  # found on the page
    assert draft.post is not None
    assert draft.post.published_at == datetime(2020, 11, 4, 10, 20, tzinfo=TZ)
    bare = _draft(_record("news/3000.html", {}), None)  # no definition at all
    assert bare.subject == "夏庄街道开展燃气安全检查"
    assert bare.body.startswith("11 月 3 日，夏庄街道联合燃气公司")
    assert "版权所有" not in bare.body and "登录" not in bare.body
    assert bare.post is not None and bare.post.site == "城阳新闻网"
    assert bare.post.published_at == datetime(2020, 11, 3, tzinfo=TZ)


def test_body_selector_that_no_longer_matches_falls_back_to_generic() -> None:
    draft = _draft(_record("news/3001.html", {"title": "t"}), "gov_message_board")
    assert draft.body.startswith("记者从城阳区住建局获悉")


def test_list_only_items_and_empty_pages() -> None:
    raw = _record("<li>whatever</li>", {"title": "城阳区夏庄街道水管爆裂",
                                        "summary": "夏庄街道源头社区水管爆裂"}, page="list_item")
    draft = _draft(raw, "tieba")
    assert (draft.subject, draft.body) == ("城阳区夏庄街道水管爆裂", "夏庄街道源头社区水管爆裂")
    title_only = _draft(_record("<li/>", {"title": "只有标题"}, page="list_item"), "tieba")
    assert title_only.body == "只有标题"
    with pytest.raises(Rejected) as caught:
        normalize(_record("<li/>", {}, page="list_item"), NormalizerContext("board", TZ))
    assert caught.value.errors[0].field == "page.body"


def test_a_page_received_now_is_valid() -> None:
    raw = _record("gov/detail-502.html", {"title": "t", "published": "2030-01-01"})
    raw = RawRecord(**{**raw.__dict__, "received_at": datetime.now(UTC)})
    draft = _draft(raw, "gov_message_board")
    assert draft.reported_at <= draft.received_at
