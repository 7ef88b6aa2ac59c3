"""The html_pages adapter against a real local web server: full and incremental crawls,
detail pages only for new items, pagination by link and by URL pattern, failing and
missing pages, wrong charsets, truncated markup, bounds and the relevance filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.opinion.html_pages import HtmlPagesSource
from gateway.intake.health import SourceStatus
from gateway.intake.pipeline import Intake, SourceBinding
from gateway.intake.poller import Poller
from gateway.intake.sources import AdapterEnv
from gateway.model.attachments import AttachmentStore
from gateway.model.errors import SourceMisconfigured, SourceUnavailable
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import Complaint
from gateway.store import Store
from gateway.support.config import SourceConfig
from gateway.support.registry import normalizer
from tests.opinion_server import FixtureServer

TZ = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).parent.parent
DISCUZ_THREADS = {2001: "text/html", 2003: "text/html; charset=utf-8",  # GBK bytes: a lie
                  2004: "text/html; charset=gb2312",  # UTF-8 bytes: a lie too
                  2005: "text/html; charset=utf-8", 2006: "text/html"}


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """Definitions are named as config does (``discuz_forum``): relative to the repository."""
    monkeypatch.chdir(ROOT)


def discuz(server: FixtureServer, page_one: str = "html/discuz/forum-9-1.html") -> None:
    server.fixture("/forum-9-1.html", page_one)
    server.fixture("/forum-9-2.html", "html/discuz/forum-9-2.html")
    for tid, content_type in DISCUZ_THREADS.items():  # thread 2002 is gone: 404
        server.fixture(f"/thread-{tid}-1-1.html", f"html/discuz/thread-{tid}-1-1.html",
                       content_type=content_type)


async def make(store: Store, tmp_path: Path, definition: str, start: str,
               **options: Any) -> tuple[HtmlPagesSource, Intake, Poller]:
    options = {"definition": definition, "start_urls": [start], "min_host_interval_s": 0,
               "timeout_s": 5, **options}
    config = SourceConfig.model_validate({"name": "board", "adapter": "html_pages", **options})
    source = HtmlPagesSource(config, config.options,
                             AdapterEnv(AttachmentStore(tmp_path / "att"), tmp_path, TZ))
    binding = SourceBinding(normalizer("html_page"),
                            NormalizerContext("board", TZ, config.options))
    intake = Intake(store, region="CY", timezone=TZ, sinks=["file"], bindings={"board": binding})
    await source.start(intake)
    return source, intake, Poller(store, intake, SourceStatus())


async def cases(store: Store) -> list[Complaint]:
    rows = await store.read(lambda tx: tx.fetchall("SELECT document FROM cases ORDER BY id"))
    return [Complaint.model_validate_json(r[0]) for r in rows]


async def statuses(store: Store) -> dict[str, int]:
    rows = await store.read(
        lambda tx: tx.fetchall("SELECT status, COUNT(*) FROM raw_records GROUP BY status"))
    return {r[0]: int(r[1]) for r in rows}


def details(server: FixtureServer, since: int = 0) -> list[str]:
    return [p for p in server.paths()[since:] if p.startswith("/thread-")]


async def test_full_then_incremental_crawl(store: Store, site_server: FixtureServer,
                                           tmp_path: Path) -> None:
    discuz(site_server)
    source, _, poller = await make(store, tmp_path, "discuz_forum",
                                   site_server.url("/forum-9-1.html"))
    try:
        assert await poller.poll_once(source) == 5
        assert site_server.paths()[:3] == ["/robots.txt", "/forum-9-1.html", "/forum-9-2.html"]
        assert details(site_server) == [f"/thread-{t}-1-1.html"
                                        for t in (2001, 2002, 2003, 2004, 2005)]  # oldest first
        mark = len(site_server.requests)
        assert await poller.poll_once(source) == 0  # page 1 shows a seen thread: stop there
        assert site_server.paths()[mark:] == ["/forum-9-1.html"]
        discuz(site_server, "html/discuz/forum-9-1-new.html")  # a new thread on top
        mark = len(site_server.requests)
        assert await poller.poll_once(source) == 1
        assert site_server.paths()[mark:] == ["/forum-9-1.html", "/thread-2006-1-1.html"]
    finally:
        await source.stop()
    found = await cases(store)
    assert [c.subject for c in found] == [
        "小区垃圾分类桶被占用", "【求助】驾照换证流程", "长城路早高峰堵车严重",
        "城阳街道停水没有提前通知", "正阳路夜市油烟扰民", "流亭立交桥下积水"]
    gone = found[1]  # its detail page answered 404: what the list page showed is kept
    assert gone.body == "【求助】驾照换证流程" and gone.reporter.handle == "新手上路"
    gbk, lying = found[2], found[3]
    assert gbk.body.endswith("朱镕基路口（化名）尤其严重。")
    assert lying.body.startswith("城阳街道今天早上突然停水")
    newest = found[4]
    assert newest.channel == "opinion" and newest.source_ref == site_server.url(
        "/thread-2005-1-1.html")
    assert newest.post is not None and newest.post.view_count == 1171
    assert newest.post.site == "城阳社区论坛" and newest.reporter.handle == "撅撅撅"
    assert await statuses(store) == {"accepted": 6}


async def test_start_url_missing_is_misconfigured(store: Store, site_server: FixtureServer,
                                                  tmp_path: Path) -> None:
    source, _, poller = await make(store, tmp_path, "discuz_forum", site_server.url("/nope.html"))
    with pytest.raises(SourceMisconfigured, match="HTTP 404 on the configured URL"):
        await poller.poll_once(source)
    await source.stop()


async def test_definition_broken_after_start_is_misconfigured(
    store: Store, site_server: FixtureServer, tmp_path: Path
) -> None:
    definition = tmp_path / "board.yaml"
    definition.write_text((ROOT / "config/sites/discuz_forum.yaml").read_text())
    source, _, poller = await make(store, tmp_path, str(definition), site_server.url("/x.html"))
    definition.write_text("name: [broken")
    with pytest.raises(SourceMisconfigured, match="not valid YAML"):
        await poller.poll_once(source)
    await source.stop()


async def test_failures_lose_nothing(store: Store, site_server: FixtureServer,
                                     tmp_path: Path) -> None:
    discuz(site_server)
    broken = site_server.add("/thread-2003-1-1.html", b"busy", status=503)
    source, _, poller = await make(store, tmp_path, "discuz_forum",
                                   site_server.url("/forum-9-1.html"))
    try:
        with pytest.raises(SourceUnavailable, match="HTTP 503"):
            await poller.poll_once(source)
        assert [c.subject for c in await cases(store)] == [
            "小区垃圾分类桶被占用", "【求助】驾照换证流程"]  # the older ones, before the failure
        site_server.fixture("/thread-2003-1-1.html", "html/discuz/thread-2003-1-1.html")
        assert broken.status == 503
        assert await poller.poll_once(source) == 3  # the rest, nothing twice
    finally:
        await source.stop()
    assert len(await cases(store)) == 5
    assert await statuses(store) == {"accepted": 5}


async def test_slow_list_page_and_failing_page_two(site_server: FixtureServer, store: Store,
                                                   tmp_path: Path) -> None:
    discuz(site_server)
    site_server.add("/forum-9-2.html", b"oops", status=500)
    source, _, poller = await make(store, tmp_path, "discuz_forum",
                                   site_server.url("/forum-9-1.html"))
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        await poller.poll_once(source)
    assert await cases(store) == []  # page 2 is retried later, not skipped: nothing lost
    await source.stop()
    site_server.fixture("/forum-9-1.html", "html/discuz/forum-9-1.html", delay_s=3)
    source, _, poller = await make(store, tmp_path, "discuz_forum",
                                   site_server.url("/forum-9-1.html"), timeout_s=0.3)
    with pytest.raises(SourceUnavailable, match="超时"):
        await poller.poll_once(source)
    await source.stop()


async def test_bounds_per_poll(store: Store, site_server: FixtureServer, tmp_path: Path) -> None:
    discuz(site_server)
    source, _, poller = await make(store, tmp_path, "discuz_forum",
                                   site_server.url("/forum-9-1.html"), max_items=2)
    assert await poller.poll_once(source) == 2
    assert "/forum-9-2.html" not in site_server.paths()
    assert [c.subject for c in await cases(store)] == [
        "城阳街道停水没有提前通知", "正阳路夜市油烟扰民"]  # the newest two
    await source.stop()
    source, _, poller = await make(store, tmp_path, "discuz_forum",
                                   site_server.url("/forum-9-1.html"), max_pages=1)
    assert await poller.poll_once(source) == 1  # the rest of page 1 only
    await source.stop()
    assert site_server.paths().count("/forum-9-2.html") == 0


async def test_truncated_and_malformed_list_pages(store: Store, site_server: FixtureServer,
                                                  tmp_path: Path) -> None:
    discuz(site_server)
    page = site_server.routes["/forum-9-1.html"].body
    cut = page.index("城阳街道停水没有提前通知</a>".encode()) + 80
    site_server.add("/forum-9-1.html", page[:cut])  # cut off mid-row, never closed
    source, _, poller = await make(store, tmp_path, "discuz_forum",
                                   site_server.url("/forum-9-1.html"), max_pages=1)
    assert await poller.poll_once(source) == 2
    await source.stop()
    subjects = {c.subject for c in await cases(store)}
    assert subjects == {"正阳路夜市油烟扰民", "城阳街道停水没有提前通知"}
    discuz(site_server)
    source, _, poller = await make(store, tmp_path, "discuz_forum",
                                   site_server.url("/forum-9-1.html"), max_bytes=1024,
                                   max_pages=1)
    assert await poller.poll_once(source) == 0  # the first 1 KiB holds no item: no error
    await source.stop()


async def test_relevance_and_title_exclusion(store: Store, site_server: FixtureServer,
                                             tmp_path: Path) -> None:
    discuz(site_server)
    source, intake, poller = await make(
        store, tmp_path, "discuz_forum", site_server.url("/forum-9-1.html"),
        relevance={"include": ["城阳", "正阳路"], "exclude": ["垃圾", "求助"]})
    try:
        assert await poller.poll_once(source) == 2
        assert "/thread-2001-1-1.html" not in site_server.paths()  # excluded by its title alone
        assert "/thread-2003-1-1.html" in site_server.paths()  # needed its text to decide
        assert await poller.poll_once(source) == 0
    finally:
        await source.stop()
    assert [c.subject for c in await cases(store)] == [
        "城阳街道停水没有提前通知", "正阳路夜市油烟扰民"]
    assert await statuses(store) == {"accepted": 2, "filtered": 3}
    assert intake.counts[("board", "filtered")] == 3


async def test_gov_board_url_pattern_pages_and_charsets(store: Store, site_server: FixtureServer,
                                                        tmp_path: Path) -> None:
    site_server.fixture("/hdjl/index.html", "html/gov/index.html")
    site_server.fixture("/hdjl/index_1.html", "html/gov/index_1.html")
    for mid in (501, 502, 504, 505):
        site_server.fixture(f"/hdjl/detail-{mid}.html", f"html/gov/detail-{mid}.html")
    # GB18030 bytes, no charset in the page, and a header that says UTF-8.
    site_server.fixture("/hdjl/detail-503.html", "html/gov/detail-503.html",
                        content_type="text/html; charset=utf-8")
    source, _, poller = await make(store, tmp_path, "gov_message_board",
                                   site_server.url("/hdjl/index.html"))
    assert await poller.poll_once(source) == 5
    await source.stop()
    pages = [p for p in site_server.paths() if "index" in p]
    assert pages == ["/hdjl/index.html", "/hdjl/index_1.html", "/hdjl/index_2.html"]  # 404: end
    found = {c.subject: c for c in await cases(store)}
    social = found["上马街道社保卡补办地点"]
    assert social.body == "请问上马街道哪里可以补办社保卡？\n\n网上说的地址已经搬走了。"
    assert social.reporter.handle == "王**"
    assert all("回复" not in c.body for c in found.values())


async def test_tieba_query_string_pages(store: Store, site_server: FixtureServer,
                                        tmp_path: Path) -> None:
    start = "/f?kw=%E5%9F%8E%E9%98%B3&ie=utf-8"
    site_server.fixture(start, "html/tieba/list-1.html")
    site_server.fixture(start + "&pn=50", "html/tieba/list-2.html")
    for tid in (6855574054, 6855000001, 6800000002):
        site_server.fixture(f"/p/{tid}", f"html/tieba/p-{tid}.html")
    source, _, poller = await make(store, tmp_path, "tieba", site_server.url(start))
    assert await poller.poll_once(source) == 4  # /p/6700000003 is gone: list-only record
    await source.stop()
    found = {c.subject: c for c in await cases(store)}
    pipe = found["城阳区夏庄街道水管爆裂"]
    assert pipe.body == "夏庄街道源头社区水管爆裂，路面全是水，\n已经两个小时没人来修。"
    assert pipe.post is not None and pipe.post.reply_count == 5
    assert found["惜福镇路灯坏了一个月"].body == "惜福镇驻地主路路灯"  # the list's summary
