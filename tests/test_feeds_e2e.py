"""End to end, on both engines: a gateway running in-process polls a feed and a forum
on a local web server, files opinion cases and forwards them; later polls find nothing
new (no case, no replay row), and a misconfigured source is disabled without harming
the others."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from gateway.intake.health import DISABLED, UP
from gateway.server.app import Gateway
from tests.conftest import base_url, gateway_config
from tests.opinion_server import FixtureServer

ROOT = Path(__file__).parent.parent
FAST = {"poll_interval_s": 0.2, "min_host_interval_s": 0, "timeout_s": 5}


@pytest.fixture
def forum_site(site_server: FixtureServer) -> FixtureServer:
    """The local web server with a feed and a forum (list pages and threads) on it."""
    site_server.fixture("/feed.xml", "feeds/rss2.xml", content_type="application/rss+xml",
                        etag='"v1"')
    site_server.fixture("/forum-9-1.html", "html/discuz/forum-9-1.html")
    site_server.fixture("/forum-9-2.html", "html/discuz/forum-9-2.html")
    for tid in (2001, 2003, 2004, 2005):
        site_server.fixture(f"/thread-{tid}-1-1.html", f"html/discuz/thread-{tid}-1-1.html")
    return site_server


@pytest.fixture
async def gateway(tmp_path: Path, store_url: str,
                  forum_site: FixtureServer) -> AsyncIterator[Gateway]:
    sources = [
        {"name": "forum-feed", "adapter": "feeds", "url": forum_site.url("/feed.xml"),
         "relevance": {"exclude": ["广告"]}, **FAST},
        {"name": "forum-pages", "adapter": "html_pages",
         "definition": str(ROOT / "config" / "sites" / "discuz_forum.yaml"),
         "start_urls": [forum_site.url("/forum-9-1.html")], **FAST},
        {"name": "gone-feed", "adapter": "feeds", "url": forum_site.url("/no-such-feed.xml"),
         **FAST},
    ]
    gw = Gateway(gateway_config(tmp_path, store_url, sources=sources))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def _until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def _sunk(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _counts(gw: Gateway) -> tuple[int, dict[str, int]]:
    cases = await gw.store.read(lambda tx: tx.fetchone("SELECT COUNT(*) FROM cases"))
    rows = await gw.store.read(
        lambda tx: tx.fetchall("SELECT status, COUNT(*) FROM raw_records GROUP BY status"))
    return int(cases[0]), {r[0]: int(r[1]) for r in rows}


async def test_feed_and_forum_become_opinion_cases_once(gateway: Gateway, tmp_path: Path,
                                                        forum_site: FixtureServer) -> None:
    sink = tmp_path / "cases.jsonl"
    await _until(lambda: len(_sunk(sink)) >= 7)  # 2 feed entries (1 filtered) + 5 threads
    status = gateway.status.sources
    await _until(lambda: status["gone-feed"].state == DISABLED)
    assert "HTTP 404" in status["gone-feed"].reason
    # Let both sources poll a few more times: nothing new may appear.
    polls = {name: status[name].last_success for name in ("forum-feed", "forum-pages")}
    await _until(lambda: all(status[n].last_success != polls[n] for n in polls))
    polls = {name: status[name].last_success for name in ("forum-feed", "forum-pages")}
    await _until(lambda: all(status[n].last_success != polls[n] for n in polls))
    assert status["forum-feed"].state == UP and status["forum-pages"].state == UP
    cases, journal = await _counts(gateway)
    assert cases == 7
    assert journal == {"accepted": 7, "filtered": 1}  # no replay rows: seen items are skipped
    assert forum_site.paths().count("/thread-2005-1-1.html") == 1  # detail pages fetched once
    assert 304 in [r.status for r in forum_site.requests if r.path == "/feed.xml"]
    sunk = _sunk(sink)
    assert len(sunk) == 7
    by_ref = {c["source_ref"]: c for c in sunk}
    feed_case = by_ref["forum-1001"]
    assert feed_case["channel"] == "opinion" and feed_case["source"] == "forum-feed"
    assert str(feed_case["case_code"]).startswith("CY-") and "-Y-" in str(feed_case["case_code"])
    assert feed_case["reporter"] == {"name": None, "phone": None, "email": None,
                                     "handle": "夜猫子", "anonymous": False,
                                     "reply_wanted": False}
    assert feed_case["post"]["url"] == "http://forum.example.org/thread-1001-1-1.html"  # type: ignore[index]
    thread = by_ref[forum_site.url("/thread-2005-1-1.html")]
    assert thread["body"] == "正阳路夜市每天晚上油烟很大，窗户都不敢开。\n\n希望城管部门来看看。"
    assert thread["post"]["site"] == "城阳社区论坛"  # type: ignore[index]
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200  # the broken source is not critical: still ready
    sources = ready.json()["sources"]
    assert sources["gone-feed"]["state"] == "disabled"
    assert "misconfigured" in sources["gone-feed"]["reason"]
    assert sources["forum-feed"]["state"] == sources["forum-pages"]["state"] == "up"
