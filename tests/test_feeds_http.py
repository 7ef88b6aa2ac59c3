"""The feeds adapter against a real local web server (and respx where finer control is
needed): conditional GET, redirects, slow and failing servers, wrong charsets,
robots.txt, politeness, seen entries and the relevance filter, on both store engines."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from adapters.opinion.feeds import FeedSource
from gateway.intake.health import DOWN, UP, SourceStatus
from gateway.intake.pipeline import Intake, SourceBinding
from gateway.intake.poller import Poller
from gateway.intake.sources import AdapterEnv
from gateway.model.attachments import AttachmentStore
from gateway.model.errors import SourceMisconfigured, SourceUnavailable
from gateway.model.normalize import NormalizerContext
from gateway.store import Store, checkpoints
from gateway.support.config import SourceConfig
from gateway.support.registry import normalizer
from tests.opinion_server import FIXTURES, FixtureServer
from tests.pg import free_port

TZ = ZoneInfo("Asia/Shanghai")
RSS = "application/rss+xml"
ETAG = '"rss2-v1"'


def make_source(tmp_path: Path, url: str, name: str = "forum", **options: Any) -> FeedSource:
    options = {"url": url, "min_host_interval_s": 0, "timeout_s": 5, **options}
    config = SourceConfig.model_validate({"name": name, "adapter": "feeds", **options})
    env = AdapterEnv(AttachmentStore(tmp_path / "att"), tmp_path, TZ)
    return FeedSource(config, config.options, env)


async def started(source: FeedSource, store: Store) -> tuple[FeedSource, Intake]:
    binding = SourceBinding(normalizer("feed_entry"),
                            NormalizerContext(source.name, TZ, source.config.options))
    intake = Intake(store, region="CY", timezone=TZ, sinks=["file"],
                    bindings={source.name: binding})
    await source.start(intake)
    return source, intake


async def _count(store: Store, sql: str) -> int:
    row = await store.read(lambda tx: tx.fetchone(sql))
    return int(row[0])


async def _statuses(store: Store) -> dict[str, int]:
    rows = await store.read(
        lambda tx: tx.fetchall("SELECT status, COUNT(*) FROM raw_records GROUP BY status"))
    return {r[0]: int(r[1]) for r in rows}


async def test_new_entries_then_304_then_only_the_new_one(
    store: Store, site_server: FixtureServer, tmp_path: Path
) -> None:
    route = site_server.fixture("/feed.xml", "feeds/rss2.xml", content_type=RSS, etag=ETAG,
                                last_modified="Tue, 03 Nov 2020 08:01:00 GMT")
    source, intake = await started(make_source(tmp_path, site_server.url("/feed.xml")), store)
    poller = Poller(store, intake, SourceStatus())
    try:
        assert await poller.poll_once(source) == 3
        saved = await store.read(lambda tx: checkpoints.get(tx, "forum"))
        assert saved == {"url": site_server.url("/feed.xml"), "etag": ETAG,
                         "last_modified": "Tue, 03 Nov 2020 08:01:00 GMT"}
        assert await poller.poll_once(source) == 0  # 304: nothing parsed, nothing journaled
        assert site_server.requests[-1].headers["If-None-Match"] == ETAG
        assert site_server.requests[-1].status == 304
        # The feed gains one entry: only that one is new; the others are not replayed.
        route.body = route.body.replace(b"<item>", b"""<item><title>\xe6\x96\xb0\xe5\xb8\x96</title>
            <guid isPermaLink="false">forum-1004</guid><description>x</description></item>
            <item>""", 1)
        route.etag, route.last_modified = '"rss2-v2"', "Wed, 04 Nov 2020 08:00:00 GMT"
        assert await poller.poll_once(source) == 1
    finally:
        await source.stop()
    assert await _count(store, "SELECT COUNT(*) FROM cases") == 4
    assert await _statuses(store) == {"accepted": 4}  # no replay rows for entries seen before
    refs = await store.read(lambda tx: tx.fetchall("SELECT source_ref FROM cases ORDER BY id"))
    assert [r[0] for r in refs] == [
        "http://forum.example.org/thread-1003-1-1.html",
        "http://forum.example.org/thread-1002-1-1.html", "forum-1001", "forum-1004"]


async def test_relevance_filtered_entries_are_journaled_and_counted(
    store: Store, site_server: FixtureServer, tmp_path: Path
) -> None:
    site_server.fixture("/feed.xml", "feeds/rss2.xml", content_type=RSS)  # no validators: full GETs
    source, intake = await started(make_source(
        tmp_path, site_server.url("/feed.xml"),
        relevance={"include": ["城阳", "春阳路"], "exclude": ["广告"]}), store)
    poller = Poller(store, intake, SourceStatus())
    try:
        assert await poller.poll_once(source) == 2
        assert await poller.poll_once(source) == 0
    finally:
        await source.stop()
    assert await _statuses(store) == {"accepted": 2, "filtered": 1}
    assert intake.counts[("forum", "filtered")] == 1
    detail = await store.read(lambda tx: tx.fetchone(
        "SELECT source_ref, detail FROM raw_records WHERE status = 'filtered'"))
    assert detail[0] == "http://forum.example.org/thread-1003-1-1.html"
    assert "广告" in detail[1]
    saved = await store.read(lambda tx: checkpoints.get(tx, "forum"))
    assert saved["url"] == site_server.url("/feed.xml")  # kept even when nothing was yielded


async def test_unparsable_feed_makes_the_source_down_then_it_recovers(
    store: Store, site_server: FixtureServer, tmp_path: Path
) -> None:
    route = site_server.fixture("/feed.xml", "feeds/not_a_feed.html", content_type="text/html")
    source, intake = await started(make_source(tmp_path, site_server.url("/feed.xml")), store)
    source.poll_interval_s = 0.05
    status = SourceStatus()
    status.register("forum", "pull")
    poller = Poller(store, intake, status)
    poller.start(source)
    try:
        await _wait(lambda: status.sources["forum"].state == DOWN)
        assert "not an RSS or Atom feed" in status.sources["forum"].reason
        route.body = (FIXTURES / "feeds" / "atom.xml").read_bytes()
        await _wait(lambda: status.sources["forum"].state == UP, timeout=15)
    finally:
        await poller.stop()
        await source.stop()
    assert await _count(store, "SELECT COUNT(*) FROM cases") == 2


async def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# -- HTTP behaviour without a store ------------------------------------------------------


async def _read(source: FeedSource, checkpoint: Any = None) -> Any:
    try:
        return await source.read_feed(checkpoint)
    finally:
        await source.stop()


async def test_redirects_are_followed(site_server: FixtureServer, tmp_path: Path) -> None:
    site_server.fixture("/feed.xml", "feeds/atom.xml", content_type="application/atom+xml")
    site_server.redirect("/old.xml", "/moved.xml", status=301)
    site_server.redirect("/moved.xml", site_server.url("/feed.xml"), status=302)
    feed, state = await _read(make_source(tmp_path, site_server.url("/old.xml")))
    assert feed.title == "城阳区政民互动" and len(feed.entries) == 2
    assert state["url"] == site_server.url("/old.xml")  # the checkpoint is of the configured URL
    assert site_server.paths() == ["/robots.txt", "/old.xml", "/moved.xml", "/feed.xml"]


async def test_redirect_loop_is_unavailable(site_server: FixtureServer, tmp_path: Path) -> None:
    site_server.redirect("/a.xml", "/b.xml")
    site_server.redirect("/b.xml", "/a.xml")
    with pytest.raises(SourceUnavailable, match="redirects"):
        await _read(make_source(tmp_path, site_server.url("/a.xml"), max_redirects=3))


@pytest.mark.parametrize(("status", "error"), [
    (500, SourceUnavailable), (503, SourceUnavailable), (429, SourceUnavailable),
    (404, SourceMisconfigured), (401, SourceMisconfigured), (403, SourceMisconfigured),
    (410, SourceMisconfigured),
])
async def test_http_errors_map_to_the_source_error_classes(
    site_server: FixtureServer, tmp_path: Path, status: int, error: type[Exception]
) -> None:
    site_server.add("/feed.xml", b"nope", status=status)
    with pytest.raises(error, match=f"HTTP {status}"):
        await _read(make_source(tmp_path, site_server.url("/feed.xml")))


async def test_slow_server_times_out(site_server: FixtureServer, tmp_path: Path) -> None:
    site_server.fixture("/feed.xml", "feeds/rss2.xml", content_type=RSS, delay_s=3)
    with pytest.raises(SourceUnavailable, match="超时"):
        await _read(make_source(tmp_path, site_server.url("/feed.xml"), timeout_s=0.3))


async def test_nothing_listening_is_unavailable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/feed.xml"
    with pytest.raises(SourceUnavailable, match="无法"):
        await _read(make_source(tmp_path, url))


async def test_oversized_feed_is_refused(site_server: FixtureServer, tmp_path: Path) -> None:
    site_server.add("/feed.xml", b"<rss>" + b" " * 5000 + b"</rss>", content_type=RSS)
    with pytest.raises(SourceUnavailable, match="max_bytes"):
        await _read(make_source(tmp_path, site_server.url("/feed.xml"), max_bytes=2048))


@pytest.mark.parametrize(("fixture", "content_type", "text"), [
    ("feeds/gbk_undeclared.xml", "application/rss+xml; charset=utf-8", "朱镕基路积水严重"),
    ("feeds/big5.xml", "text/xml; charset=gb2312", "臺灣大道路燈損壞"),
    ("feeds/gb2312_lies.xml", "application/rss+xml; charset=gb2312", "朱镕基路积水严重"),
])
async def test_wrong_charset_headers(site_server: FixtureServer, tmp_path: Path, fixture: str,
                                     content_type: str, text: str) -> None:
    site_server.fixture("/feed.xml", fixture, content_type=content_type)
    feed, _ = await _read(make_source(tmp_path, site_server.url("/feed.xml")))
    assert any(text in (item["entry"]["title"] or "") for item in feed.entries)


async def test_user_agent_from_config(site_server: FixtureServer, tmp_path: Path) -> None:
    site_server.fixture("/feed.xml", "feeds/rss1.rdf", content_type=RSS)
    await _read(make_source(tmp_path, site_server.url("/feed.xml"),
                            user_agent="ChengyangHotline/1.0 (+mailto:it@example.org)"))
    assert {r.headers["User-Agent"] for r in site_server.requests} == {
        "ChengyangHotline/1.0 (+mailto:it@example.org)"}


async def test_robots_txt_is_honoured_unless_disabled(site_server: FixtureServer,
                                                      tmp_path: Path) -> None:
    site_server.add("/robots.txt", "User-agent: *\nDisallow: /private/\n",
                    content_type="text/plain")
    site_server.fixture("/private/feed.xml", "feeds/rss2.xml", content_type=RSS)
    site_server.fixture("/public/feed.xml", "feeds/rss2.xml", content_type=RSS)
    with pytest.raises(SourceMisconfigured, match=r"robots\.txt"):
        await _read(make_source(tmp_path, site_server.url("/private/feed.xml")))
    assert "/private/feed.xml" not in site_server.paths()
    feed, _ = await _read(make_source(tmp_path, site_server.url("/private/feed.xml"),
                                      respect_robots=False))
    assert len(feed.entries) == 3
    source = make_source(tmp_path, site_server.url("/public/feed.xml"))
    await source.read_feed(None)
    await source.read_feed(None)
    await source.stop()
    assert site_server.paths().count("/robots.txt") == 2  # once per source instance: cached


async def test_robots_rules_for_our_agent(site_server: FixtureServer, tmp_path: Path) -> None:
    site_server.add("/robots.txt", "User-agent: MinshengGateway\nDisallow: /\n\n"
                    "User-agent: *\nAllow: /\n", content_type="text/plain")
    site_server.fixture("/feed.xml", "feeds/rss2.xml", content_type=RSS)
    with pytest.raises(SourceMisconfigured, match=r"robots\.txt"):
        await _read(make_source(tmp_path, site_server.url("/feed.xml")))
    feed, _ = await _read(make_source(tmp_path, site_server.url("/feed.xml"),
                                      user_agent="OtherBot/2.0"))
    assert len(feed.entries) == 3


async def test_requests_to_one_host_are_spaced(site_server: FixtureServer, tmp_path: Path) -> None:
    site_server.fixture("/a.xml", "feeds/rss2.xml", content_type=RSS)
    site_server.fixture("/b.xml", "feeds/atom.xml", content_type=RSS)
    first = make_source(tmp_path, site_server.url("/a.xml"), name="a", respect_robots=False,
                        min_host_interval_s=0.3)
    second = make_source(tmp_path, site_server.url("/b.xml"), name="b", respect_robots=False,
                         min_host_interval_s=0.3)
    await asyncio.gather(_read(first), _read(second))
    times = sorted(r.at for r in site_server.requests)
    assert len(times) == 2
    assert times[1] - times[0] >= 0.25  # a lower bound only: politeness, not speed


# -- finer control with respx ------------------------------------------------------------


@respx.mock
async def test_dns_failure_is_unavailable(tmp_path: Path) -> None:
    respx.get("http://no-such-host.example.org/robots.txt").mock(
        side_effect=httpx.ConnectError("[Errno -2] Name or service not known"))
    with pytest.raises(SourceUnavailable, match="Name or service not known"):
        await _read(make_source(tmp_path, "http://no-such-host.example.org/feed.xml"))
    respx.get("http://no-such-host.example.org/feed.xml").mock(
        side_effect=httpx.ConnectError("[Errno -2] Name or service not known"))
    with pytest.raises(SourceUnavailable, match="无法连接"):
        await _read(make_source(tmp_path, "http://no-such-host.example.org/feed.xml",
                                respect_robots=False))


@respx.mock
async def test_robots_txt_server_error_is_unavailable(tmp_path: Path) -> None:
    respx.get("http://feeds.example.org/robots.txt").mock(return_value=httpx.Response(503))
    feed = respx.get("http://feeds.example.org/feed.xml")
    with pytest.raises(SourceUnavailable, match="503"):
        await _read(make_source(tmp_path, "http://feeds.example.org/feed.xml"))
    assert not feed.called


@respx.mock
async def test_crawl_delay_widens_the_interval(tmp_path: Path) -> None:
    respx.get("http://slow.example.org/robots.txt").mock(return_value=httpx.Response(
        200, text="User-agent: *\nCrawl-delay: 1\n"))
    route = respx.get("http://slow.example.org/feed.xml").mock(return_value=httpx.Response(
        200, content=(FIXTURES / "feeds" / "rss1.rdf").read_bytes(), headers={
            "content-type": RSS}))
    source = make_source(tmp_path, "http://slow.example.org/feed.xml")
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    await source.read_feed(None)
    await source.read_feed(None)
    await source.stop()
    assert route.call_count == 2
    assert loop.time() - started_at >= 0.9  # robots.txt asked for 1 s between requests
