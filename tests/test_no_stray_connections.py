"""Data stays on the machine it is meant for (issue 18, item 6): a gateway process with
every optional feature on opens no connection except to what its config names.

The gateway runs as a subprocess (tests/procs.py) with tests/netaudit first on its
``PYTHONPATH``: that folder's ``sitecustomize`` records every ``socket.connect``,
UDP send and name lookup of the process in a file. Every feature points at a loopback
server this test starts: the web mailbox and the phone webhook (push: fed over HTTP),
IMAP (Dovecot), an RSS feed and a forum (a local web server), the http, jsonl, kafka
(tansu) and open311 sinks, the smtp block with the weekly report, the ops views and the
Open311 read side. The test runs until the pollers polled, every sink delivered and the
weekly report was mailed (by ``minsheng report weekly --mail-to``, under the same hook:
the gateway's own Monday task runs on Mondays only), then asserts that each recorded
attempt went to a configured target and that each target was reached.

To add a feature: start its loopback server, put its block in the config and
``rig.allow(name, url)`` its address.

The store is SQLite: PostgreSQL's connections are made inside libpq, out of the hook's
sight (the store URL is a configured target anyway).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests import dovecot, kafka_broker
from tests.conftest import raw_config
from tests.dovecot import Dovecot, Mailbox
from tests.kafka_broker import KafkaBroker
from tests.open311_server import Open311Server
from tests.opinion_server import FixtureServer
from tests.pg import free_port
from tests.procs import GatewayProcess, run_cli, write_config
from tests.receiver import Receiver
from tests.sms_server import SmsServer
from tests.sms_server import block as sms_block
from tests.smtp_server import PASSWORD, smtp_server

pytestmark = pytest.mark.skipif(
    not (dovecot.available() and kafka_broker.available()),
    reason="needs dovecot-imapd and the tansu broker (make test installs them)")

HOOK_DIR = Path(__file__).parent / "netaudit"
TOKEN, OPS, IVR = "stray-api-token", "stray-ops-token", "stray-ivr-token"
SINK_SECRET, OPEN311_KEY = "stray-sink-secret", "stray-open311-key"
ENV = {"STRAY_API": TOKEN, "STRAY_OPS": OPS, "STRAY_IVR": IVR, "STRAY_SINK": SINK_SECRET,
       "STRAY_311": OPEN311_KEY, "STRAY_SMTP": PASSWORD}
MAIL = ("From: 王先生 <wang@example.cn>\r\nTo: hotline@12345.example.cn\r\n"
        "Subject: =?utf-8?b?6Lev54Gv5LiN5Lqu?=\r\nMessage-ID: <stray-1@example.cn>\r\n"
        "Date: Mon, 30 Nov 2026 09:00:00 +0800\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n正阳路 88 号门口路灯一周不亮。\r\n").encode()
FAST = {"poll_interval_s": 0.3, "min_host_interval_s": 0, "timeout_s": 5}


@dataclass
class Rig:
    """The configured targets: (name → host, port), what the gateway may connect to."""

    targets: dict[str, tuple[str, int]] = field(default_factory=dict)

    def allow(self, name: str, url: str) -> None:
        parts = urlsplit(url if "//" in url else f"tcp://{url}")
        assert parts.hostname is not None and parts.port is not None, url
        self.targets[name] = (parts.hostname, parts.port)

    @property
    def hosts(self) -> set[str]:
        return {host for host, _ in self.targets.values()}

    def target_of(self, attempt: dict[str, Any]) -> str | None:
        return next((name for name, (host, port) in self.targets.items()
                     if attempt["host"] == host and attempt["port"] == str(port)), None)


def attempts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not reached in time: {what}"
        await asyncio.sleep(0.2)


@pytest.fixture
async def servers(dovecot_server: Dovecot, site_server: FixtureServer,
                  tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    site_server.fixture("/feed.xml", "feeds/rss2.xml", content_type="application/rss+xml")
    site_server.fixture("/forum-9-1.html", "html/discuz/forum-9-1.html")
    for tid in (2001, 2003, 2004, 2005):
        site_server.fixture(f"/thread-{tid}-1-1.html", f"html/discuz/thread-{tid}-1-1.html")
    receiver, city = Receiver(secret=SINK_SECRET), Open311Server(OPEN311_KEY, "cy.example")
    await receiver.start()
    await city.start()
    broker = KafkaBroker()
    await asyncio.to_thread(broker.start)
    sms = SmsServer()
    await sms.start()
    user = dovecot_server.add_user()
    async with Mailbox(dovecot_server, user) as box:
        await box.append(MAIL)
    (tmp_path / "smtp").mkdir()
    with smtp_server(tmp_path / "smtp") as smtp:
        try:
            yield {"imap": dovecot_server, "imap_user": user, "site": site_server,
                   "http": receiver, "open311": city, "kafka": broker, "smtp": smtp,
                   "sms": sms}
        finally:
            await sms.close()
            broker.stop()
            await city.close()
            await receiver.close()


def gateway_raw(tmp_path: Path, s: dict[str, Any], rig: Rig) -> dict[str, Any]:
    imap: Dovecot = s["imap"]
    site: FixtureServer = s["site"]
    rig.allow("imap", f"127.0.0.1:{imap.imaps_port}")
    rig.allow("site", site.base)
    rig.allow("http sink", s["http"].url)
    rig.allow("open311 sink", s["open311"].url)
    rig.allow("kafka sink", s["kafka"].bootstrap)
    rig.allow("smtp", f"127.0.0.1:{s['smtp'].port}")
    rig.allow("sms provider", s["sms"].base)
    sources = [
        {"name": "web", "adapter": "web_mailbox"},
        {"name": "hotline", "adapter": "cdr_webhook", "missed_calls": "callback",
         "auth": {"scheme": "bearer", "token": "${STRAY_IVR}"}},
        {"name": "mail", "adapter": "imap_email", "host": "127.0.0.1", "port": imap.imaps_port,
         "ca_file": str(imap.ca_file), "username": s["imap_user"], "password": imap.password,
         "idle": False, "poll_interval_s": 0.3, "timeout_s": 10,
         "own_addresses": ["hotline@12345.example.cn"]},
        {"name": "forum-feed", "adapter": "feeds", "url": site.url("/feed.xml"), **FAST},
        {"name": "forum-pages", "adapter": "html_pages",
         "definition": str(Path(__file__).parents[1] / "config/sites/discuz_forum.yaml"),
         "start_urls": [site.url("/forum-9-1.html")], **FAST},
    ]
    retry = {"base_delay_s": 0.05, "max_delay_s": 0.5, "max_attempts": 500}
    sinks = [
        {"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl"),
         "poll_interval_s": 0.2},
        {"name": "platform", "kind": "http", "url": s["http"].url, "secret": "${STRAY_SINK}",
         "timeout_s": 5, "poll_interval_s": 0.2, "retry": retry},
        {"name": "bus", "kind": "kafka", "bootstrap_servers": s["kafka"].bootstrap,
         "topic": "cases", "idempotent": False, "send_timeout_s": 5, "poll_interval_s": 0.2,
         "retry": retry},
        {"name": "city", "kind": "open311", "url": s["open311"].url, "api_key": "${STRAY_311}",
         "jurisdiction_id": "cy.example", "default_service_code": "002",
         "poll_interval_s": 0.2, "retry": retry},
        {"name": "reply-mail", "kind": "citizen_email", "poll_interval_s": 0.2, "retry": retry},
        {"name": "reply-sms", "kind": "citizen_sms", "poll_interval_s": 0.2, "retry": retry},
    ]
    raw = raw_config(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}", sources=sources,
                     sinks=sinks, api={"token": "${STRAY_API}"},
                     ops={"token": "${STRAY_OPS}"},
                     smtp={**s["smtp"].config(), "password": "${STRAY_SMTP}"},
                     sms=sms_block("generic", s["sms"].base, s["sms"].credentials),
                     reports={"enabled": True, "folder": str(tmp_path / "reports"),
                              "email_to": ["leader@district.example.cn"]},
                     open311={"jurisdiction_id": "cy.example", "services": [
                         {"code": "002", "name": "其他 Other", "categories": ["其他"]}]})
    raw["server"]["listen"] = f"127.0.0.1:{free_port()}"
    return raw


async def feed_push_sources(base: str) -> str:
    """A web form and a phone call with its notes: the push channels, fed over HTTP."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        form = await client.post("/intake/web", json={
            "name": "黄女士", "phone": "13800138000", "content": "小区门口共享单车堆放严重",
            "address": "城阳区正阳路"})
        assert form.status_code == 202, form.text
        ivr = {"Authorization": f"Bearer {IVR}"}
        call = await client.post("/intake/hotline", headers=ivr, json={
            "call_id": "stray-1", "caller": "13900139000", "callee": "12345",
            "started_at": "2026-11-30T09:30:00+08:00", "answered_at": "2026-11-30T09:30:08+08:00",
            "ended_at": "2026-11-30T09:34:00+08:00", "agent": "1024"})
        assert call.status_code in (200, 202), call.text
        notes = await client.post("/intake/hotline/calls/stray-1/notes", headers=ivr, json={
            "subject": "路灯不亮", "content": "正阳路 88 号门口路灯一周不亮。",
            "caller_name": "王女士"})
        assert notes.status_code in (200, 202), notes.text
        code: str = form.json()["case_code"]
        for path, token in ((f"/v1/cases/{code}", TOKEN), ("/v1/status", OPS),
                            ("/metrics", OPS)):
            read = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert read.status_code == 200, (path, read.text)
        assert (await client.get(f"/open311/v2/requests/{code}.json")).status_code == 200
    return code


async def test_the_gateway_connects_only_to_configured_targets(
        tmp_path: Path, servers: dict[str, Any]) -> None:
    rig = Rig()
    raw = gateway_raw(tmp_path, servers, rig)
    config = write_config(tmp_path / "gateway.yaml", raw)
    log = tmp_path / "connections.jsonl"
    path = os.pathsep.join([str(HOOK_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**ENV, "PYTHONPATH": path, "MINSHENG_NET_AUDIT": str(log)}
    listen = f"http://{raw['server']['listen']}"
    gateway = GatewayProcess(config, tmp_path / "gateway.log", listen, env)
    receiver: Receiver = servers["http"]
    city: Open311Server = servers["open311"]
    gateway.start()
    try:
        await gateway.wait_ready()
        await feed_push_sources(listen)
        sunk = tmp_path / "cases.jsonl"

        def channels() -> set[str]:
            lines = sunk.read_text().splitlines() if sunk.exists() else []
            return {json.loads(line)["channel"] for line in lines}

        await until(lambda: {"web", "phone", "email", "opinion"} <= channels(),
                    "a case of every channel in the jsonl sink")
        await until(lambda: len(receiver.accepted) >= 4, "the http sink's deliveries")
        await until(lambda: len(city.received) >= 1, "the open311 sink's deliveries")
        await until(lambda: "kafka sink" in reached(rig, attempts(log)), "the kafka broker")
        await until(lambda: len(servers["sms"].received) >= 1, "the case code by SMS")
        await until(lambda: len(servers["smtp"].received) >= 1, "the case code by e-mail")
        mailed = await asyncio.to_thread(
            run_cli, "report", "weekly", "--mail-to", "leader@district.example.cn",
            "--config", str(config), env=env)
        assert mailed.returncode == 0, mailed.stderr
        assert len(servers["smtp"].received) >= 2, "the weekly report was not mailed"
    finally:
        gateway.terminate()
    found = attempts(log)
    stray = [a for a in found if not allowed(rig, a)]
    assert stray == [], f"connections to unconfigured targets: {stray}\n{gateway.log_tail()}"
    assert reached(rig, found) == set(rig.targets)


def allowed(rig: Rig, attempt: dict[str, Any]) -> bool:
    if attempt["kind"] == "name":  # a name looked up: only the configured hosts' names
        return attempt["host"] in rig.hosts
    return rig.target_of(attempt) is not None


def reached(rig: Rig, found: list[dict[str, Any]]) -> set[str]:
    return {name for a in found if a["event"] == "socket.connect"
            and (name := rig.target_of(a)) is not None}


def test_the_hook_records_what_the_rig_refuses(tmp_path: Path) -> None:
    """The recorder sees a connection to an unconfigured port and a name lookup, and the
    check above refuses both: the main test can fail."""
    log = tmp_path / "connections.jsonl"
    port = free_port()
    script = ("import socket, contextlib\n"
              "with contextlib.suppress(OSError):\n"
              f"    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
              "with contextlib.suppress(OSError):\n"
              "    socket.getaddrinfo('example.invalid', 443)\n")
    env = {**os.environ, "PYTHONPATH": str(HOOK_DIR), "MINSHENG_NET_AUDIT": str(log)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=30)
    found = attempts(log)
    rig = Rig()
    rig.allow("somewhere", f"127.0.0.1:{free_port()}")
    assert [(a["event"], a["host"]) for a in found if not allowed(rig, a)] == [
        ("socket.connect", "127.0.0.1"), ("socket.getaddrinfo", "example.invalid")]
