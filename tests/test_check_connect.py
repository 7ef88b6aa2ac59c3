"""``minsheng check-config --connect`` against real local servers: the test PostgreSQL
(and SQLite), the Dovecot fixture, a web server for feeds, site lists and health URLs,
and the aiohttp case receiver; then the failures an operator meets: a refused port,
a wrong password, a server that never answers, an unwritable sink path, a 5xx."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gateway.cli import main
from gateway.cli.connect import check_connections
from gateway.support.config import parse_config
from gateway.support.connection_check import ConnectionCheck
from tests.conftest import raw_config
from tests.dovecot import Dovecot
from tests.opinion_server import FixtureServer
from tests.pg import free_port
from tests.receiver import Receiver

PASSWORD_ENV = "MINSHENG_TEST_CHECK_IMAP_PASSWORD"
RSS = "application/rss+xml"
# Two sources on one host are paced min_host_interval_s apart, in the check too.
QUICK = {"min_host_interval_s": 0}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def _mailbox(server: Dovecot) -> dict[str, Any]:
    return {"name": "mail", "adapter": "imap_email", "host": "127.0.0.1",
            "port": server.imaps_port, "ca_file": str(server.ca_file),
            "username": server.user, "password": f"${{{PASSWORD_ENV}}}", "timeout_s": 5}


async def _checks(raw: dict[str, Any], timeout_s: float = 5.0) -> dict[str, ConnectionCheck]:
    results = await check_connections(parse_config(raw), timeout_s)
    return {target.split(" ")[0]: result for target, result in results}


async def test_every_target_reached(tmp_path: Path, store_url: str, dovecot_server: Dovecot,
                                    site_server: FixtureServer,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, dovecot_server.password)
    site_server.fixture("/feed.xml", "feeds/rss2.xml", content_type=RSS)
    site_server.add("/list.html", "<html><body><ul></ul></body></html>")
    site_server.add("/health", '{"status":"ok"}', content_type="application/json")
    receiver = Receiver()
    url = await receiver.start()
    raw = raw_config(tmp_path, store_url, sources=[
        {"name": "web", "adapter": "web_mailbox"}, _mailbox(dovecot_server),
        {"name": "forum", "adapter": "feeds", "url": site_server.url("/feed.xml"), **QUICK},
        {"name": "board", "adapter": "html_pages", "definition": "gov_message_board",
         "start_urls": [site_server.url("/list.html")], **QUICK},
        {"name": "old", "adapter": "feeds", "url": "http://127.0.0.1:9/x", "enabled": False},
    ], sinks=[
        {"name": "file", "kind": "jsonl", "path": str(tmp_path / "new" / "cases.jsonl")},
        {"name": "platform", "kind": "http", "url": url},
        {"name": "checked", "kind": "http", "url": url, "health_url": site_server.url("/health")},
    ])
    try:
        found = await _checks(raw)
    finally:
        await receiver.close()
    assert [t for t, r in found.items() if r.state != "ok"] == ["sources.web", "sources.old"]
    assert found["sources.web"].state == found["sources.old"].state == "not_checked"
    assert "logged in" in found["sources.mail"].detail
    assert "HTTP 200" in found["sources.forum"].detail
    assert "OPTIONS HTTP 405" in found["sinks.platform"].detail  # a POST-only receiver is there
    assert "health_url HTTP 200" in found["sinks.checked"].detail
    assert receiver.requests == []  # nothing was delivered
    assert not (tmp_path / "new").exists()  # nor created


async def test_failures_name_the_cause(tmp_path: Path, dovecot_server: Dovecot,
                                       site_server: FixtureServer, silent_port: int,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not the password")
    site_server.add("/health", "down", status=503)
    site_server.add("/slow.xml", "", content_type=RSS, delay_s=5)
    refused = f"http://127.0.0.1:{free_port()}/cases"
    (tmp_path / "a-file").write_text("")
    raw = raw_config(tmp_path, f"postgresql://gw:pw@127.0.0.1:{free_port()}/gateway", sources=[
        _mailbox(dovecot_server),
        {"name": "forum", "adapter": "feeds", "url": f"http://127.0.0.1:{free_port()}/f.xml"},
        {"name": "slow", "adapter": "feeds", "url": site_server.url("/slow.xml")},
    ], sinks=[
        {"name": "file", "kind": "jsonl", "path": str(tmp_path / "a-file" / "cases.jsonl")},
        {"name": "gone", "kind": "http", "url": refused},
        {"name": "sick", "kind": "http", "url": refused, "health_url": site_server.url("/health")},
        {"name": "hung", "kind": "http", "url": f"http://127.0.0.1:{silent_port}/cases"},
    ])
    found = await _checks(raw, timeout_s=2.0)
    assert all(r.state == "failed" for r in found.values()), found
    assert "Connection refused" in found["store"].detail or "连接被拒绝" in found["store"].detail
    assert "登录被拒绝" in found["sources.mail"].detail
    assert "not the password" not in found["sources.mail"].detail
    assert "ConnectError" in found["sources.forum"].detail  # robots.txt first, as a poll
    assert found["sources.slow"].detail == "2 秒内无应答 (no answer within 2 s)"
    assert found["sinks.file"].detail.endswith("a-file is not a folder)")
    assert found["sinks.gone"].detail.startswith("连接被拒绝 (connection refused")
    assert found["sinks.sick"].detail == "健康检查返回 HTTP 503 (health_url answered HTTP 503)"
    assert found["sinks.hung"].detail == "2 秒内无应答 (no answer within 2 s)"


def test_cli_prints_a_line_per_target_and_fails(tmp_path: Path) -> None:
    raw = raw_config(tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", sinks=[
        {"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl")},
        {"name": "platform", "kind": "http", "url": f"http://127.0.0.1:{free_port()}/cases"},
    ])
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    runner = CliRunner()
    offline = runner.invoke(main, ["check-config", "--config", str(path)])
    assert offline.exit_code == 0 and "sinks." not in offline.output
    result = runner.invoke(main, ["check-config", "--connect", "--timeout", "3",
                                  "--config", str(path)])
    lines = result.stdout.splitlines()
    assert result.exit_code == 1, result.output
    assert lines[1:] == [
        "store (sqlite): ok — 数据库文件将在首次启动时创建 "
        f"({tmp_path / 'gw.db'} will be created at the first start)",
        "sources.web (web_mailbox): 未检查 (not checked) — 推送来源，由对方连接本网关 "
        "(push source: senders connect to the gateway)",
        f"sinks.file (jsonl): ok — 目录可写 ({tmp_path} is writable)",
        lines[4],
    ]
    assert lines[4].startswith("sinks.platform (http): 失败 (FAILED) — 连接被拒绝")
    assert "1 个目标连接失败 (1 target(s) failed)" in result.stderr
    assert not (tmp_path / "gw.db").exists()
