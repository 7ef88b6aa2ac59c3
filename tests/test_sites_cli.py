"""``minsheng sites test`` and ``minsheng sites extract`` on saved pages and on a real
local server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from adapters.opinion.cli import sites
from gateway.model.schema import ComplaintDraft
from tests.opinion_server import FIXTURES, FixtureServer

ROOT = Path(__file__).parent.parent
HTML = FIXTURES / "html"


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def run(*args: str) -> Result:
    return CliRunner().invoke(sites, list(args), catch_exceptions=False)


async def run_async(*args: str) -> Result:
    return await asyncio.to_thread(run, *args)


def quick(tmp_path: Path, definition: str, start: str) -> list[str]:
    """``--config``/``--source`` of a source without the politeness delay (tests only)."""
    config = tmp_path / "quick.yaml"
    config.write_text(f"""
store: {{url: "sqlite:///{tmp_path}/gw.db"}}
sources:
  - name: quick
    adapter: html_pages
    definition: {definition}
    start_urls: ["{start}"]
    min_host_interval_s: 0
""")
    return ["--config", str(config), "--source", "quick"]


def test_definition_on_a_saved_list_page() -> None:
    result = run("test", "config/sites/discuz_forum.yaml", "--file",
                 str(HTML / "discuz" / "forum-9-1.html"))
    assert result.exit_code == 0, result.output
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert [i["title"] for i in items] == [
        "正阳路夜市油烟扰民", "城阳街道停水没有提前通知", "长城路早高峰堵车严重"]
    assert items[0]["author"] == "撅撅撅" and items[0]["view_count"] == 1171
    assert items[2]["published_at"] == "2020-07-19T00:00:00+08:00"
    assert items[0]["url"].endswith("/discuz/thread-2005-1-1.html")
    assert "3 items; next page: " in result.stderr and "forum-9-2.html" in result.stderr


def test_a_definition_that_matches_nothing_exits_1() -> None:
    result = run("test", "tieba", "--file", str(HTML / "discuz" / "forum-9-1.html"))
    assert result.exit_code == 1
    assert "no element matched the item selector" in result.stderr


def test_a_broken_definition_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsite: x\nstart_urls: [http://x.example.org/]\n"
                   "list: {item: 'li[', title: a, link: a}\n")
    result = run("test", str(bad), "--file", str(HTML / "discuz" / "forum-9-1.html"))
    assert result.exit_code == 2
    assert "not a valid CSS selector" in result.output


async def test_definition_on_a_live_list_with_detail_pages(site_server: FixtureServer,
                                                           tmp_path: Path) -> None:
    site_server.fixture("/hdjl/index.html", "html/gov/index.html")
    site_server.fixture("/hdjl/detail-505.html", "html/gov/detail-505.html")
    site_server.fixture("/hdjl/detail-504.html", "html/gov/detail-504.html")
    options = quick(tmp_path, "gov_message_board", site_server.url("/hdjl/index.html"))
    result = await run_async("test", "gov_message_board", "--detail", "2", *options)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5  # 3 items, then 2 complaints
    assert json.loads(lines[0])["title"] == "关于城阳区正阳路公交站台迁移后老人乘车不便的问题"
    drafts = [ComplaintDraft.model_validate_json(line) for line in lines[3:]]
    assert drafts[1].body == "春阳路小学门口没有人行横道，\n\n孩子上学过马路很危险。"
    assert drafts[0].post is not None and drafts[0].post.site == "城阳区人民政府·区长信箱"
    assert "index_1.html" in result.stderr
    gone = await run_async("test", "gov_message_board", "--url", site_server.url("/nope.html"),
                           *options)
    assert gone.exit_code == 1 and "HTTP 404" in gone.stderr


def test_extract_an_article_file() -> None:
    result = run("extract", "--file", str(HTML / "news" / "3000.html"))
    assert result.exit_code == 0, result.output
    article = json.loads(result.stdout)
    assert article["title"] == "夏庄街道开展燃气安全检查"
    assert article["published"] == "2020-11-03"
    assert article["author"] == "记者 陈记者"
    assert article["text"] == ("11 月 3 日，夏庄街道联合燃气公司对辖区餐饮场所开展燃气安全检查。\n"
                               "检查发现隐患 17 处，已当场督促整改。")


async def test_extract_a_live_article(site_server: FixtureServer, tmp_path: Path) -> None:
    site_server.fixture("/a/3001.html", "html/news/3001.html",
                        content_type="text/html; charset=gbk")
    site_server.add("/robots.txt", "User-agent: *\nDisallow: /private/\n",
                    content_type="text/plain")
    options = quick(tmp_path, "news_list", site_server.url("/list.html"))
    result = await run_async("extract", "--url", site_server.url("/a/3001.html"), *options)
    assert result.exit_code == 0, result.output
    article = json.loads(result.stdout)
    assert article["url"] == site_server.url("/a/3001.html")
    assert article["text"].startswith("记者从城阳区住建局获悉")
    barred = await run_async("extract", "--url", site_server.url("/private/a.html"), *options)
    assert barred.exit_code == 1 and "robots.txt" in barred.stderr
    assert run("extract").exit_code == 2
