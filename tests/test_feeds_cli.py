"""``minsheng feeds test`` on saved files and on a real local server, and the example
opinion config through ``check-config``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from adapters.opinion.cli import feeds
from gateway.cli import main
from gateway.model.schema import ComplaintDraft
from gateway.support.config import load_config
from tests.opinion_server import FIXTURES, FixtureServer

ROOT = Path(__file__).parent.parent
FEEDS = FIXTURES / "feeds"


def run(*args: str) -> Result:
    return CliRunner().invoke(feeds, list(args), catch_exceptions=False)


async def run_async(*args: str) -> Result:
    """The command runs its own event loop: off this one, while the server answers here."""
    return await asyncio.to_thread(run, *args)


def test_file_prints_one_canonical_json_object_per_entry() -> None:
    result = run("test", "--file", str(FEEDS / "rss2.xml"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    drafts = [ComplaintDraft.model_validate_json(line) for line in lines]
    assert {d.subject for d in drafts} == {
        "正阳路夜间施工噪音扰民", "春阳路井盖缺失 & 无人修复", "【广告】城阳最好的装修公司"}
    assert all(d.channel == "opinion" for d in drafts)
    assert all(json.loads(line)["source"] == "feeds-test" for line in lines)


def test_unreadable_file_says_why_and_exits_1() -> None:
    result = run("test", "--file", str(FEEDS / "not_a_feed.html"))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "not an RSS or Atom feed" in result.stderr


def test_source_options_from_a_config(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(f"""
sources:
  - name: forum
    adapter: feeds
    url: http://forum.example.org/rss.xml
    site: 城阳论坛
    relevance: {{exclude: [广告]}}
store: {{url: "sqlite:///{tmp_path}/gw.db"}}
""")
    result = run("test", "--file", str(FEEDS / "rss2.xml"), "--config", str(config),
                 "--source", "forum")
    assert result.exit_code == 0, result.output
    drafts = [ComplaintDraft.model_validate_json(line) for line in result.stdout.splitlines()]
    assert len(drafts) == 2
    assert all(d.source == "forum" and d.post and d.post.site == "城阳论坛" for d in drafts)
    assert "filtered" in result.stderr and "广告" in result.stderr
    missing = run("test", "--file", str(FEEDS / "rss2.xml"), "--config", str(config),
                  "--source", "nope")
    assert missing.exit_code == 2 and "no source 'nope'" in missing.output


def test_usage_errors() -> None:
    assert run("test").exit_code == 2
    both = run("test", "--file", str(FEEDS / "rss2.xml"), "--url", "http://x.example.org/")
    assert both.exit_code == 2 and "not both" in both.output


def quick_config(tmp_path: Path, adapter: str, **options: str) -> list[str]:
    """``--config``/``--source`` of a source without the politeness delay (tests only)."""
    config = tmp_path / "quick.yaml"
    extra = "".join(f"\n    {k}: {v}" for k, v in options.items())
    config.write_text(f"""
store: {{url: "sqlite:///{tmp_path}/gw.db"}}
sources:
  - name: quick
    adapter: {adapter}
    min_host_interval_s: 0{extra}
""")
    return ["--config", str(config), "--source", "quick"]


async def test_url(site_server: FixtureServer, tmp_path: Path) -> None:
    site_server.fixture("/feed.xml", "feeds/big5.xml", content_type="text/xml; charset=gb2312")
    site_server.add("/maintenance.xml", "<html><body>维护中</body></html>")
    quick = quick_config(tmp_path, "feeds", url=site_server.url("/feed.xml"))
    result = await run_async("test", *quick)  # the source's own URL
    assert result.exit_code == 0, result.output
    subjects = [json.loads(line)["subject"] for line in result.stdout.splitlines()]
    assert subjects == ["屋苑噪音問題", "臺灣大道路燈損壞"]
    gone = await run_async("test", "--url", site_server.url("/gone.xml"), *quick)
    assert gone.exit_code == 1 and "HTTP 404" in gone.stderr
    broken = await run_async("test", "--url", site_server.url("/maintenance.xml"), *quick)
    assert broken.exit_code == 1 and "not an RSS or Atom feed" in broken.stderr


def test_example_opinion_config_passes_check_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    config = load_config("config/examples/opinion.yaml")
    adapters = {s.name: s.adapter for s in config.sources}
    assert set(adapters.values()) == {"feeds", "html_pages"}
    result = CliRunner().invoke(main, ["check-config", "--config",
                                       "config/examples/opinion.yaml"])
    assert result.exit_code == 0, result.output


def test_check_config_reports_bad_opinion_sources(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    config = tmp_path / "bad.yaml"
    config.write_text("""
sources:
  - name: feed
    adapter: feeds
    url: ftp://example.org/feed
    relevance: {include: ["  "]}
  - name: pages
    adapter: html_pages
    definition: no_such_site
    max_pages: 0
""")
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 2
    for expected in ("sources[0] (name=feed): url", "relevance.include",
                     "sources[1] (name=pages): definition", "config/sites/no_such_site.yaml",
                     "max_pages"):
        assert expected in result.output
