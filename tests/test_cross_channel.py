"""Issue 6 end to end over the real channels: a citizen phones the hotline, then writes an
e-mail about the same matter; the mail's case is a repeat of the call's.

The call arrives over HTTP at the real `hotline` source (a call record, then the agent's
notes); the mail is APPENDed to a real Dovecot and pulled by the real `imap_email` source.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.server.app import Gateway
from tests import dovecot
from tests.conftest import base_url, gateway_config
from tests.dovecot import Dovecot, Mailbox

pytestmark = pytest.mark.skipif(not dovecot.available(),
                                reason="dovecot-imapd is not installed (make test installs it)")
PASSWORD_ENV = "MINSHENG_TEST_IMAP_PASSWORD"
MATTER = "幸福路12号门前的下水道堵塞三天了，污水漫到路面，行人无法通过，请尽快派人疏通。"


def _mail(user: str) -> bytes:
    body = f"您好：\r\n{MATTER}\r\n联系电话：138 0013 8000\r\n谢谢！\r\n"
    return (f"From: =?utf-8?B?546L5aWz5aOr?= <wang@example.cn>\r\nTo: {user}@localhost\r\n"
            "Subject: =?utf-8?B?5LiL5rC06YGT5aC15aGe?=\r\n"
            "Date: Tue, 26 Nov 2026 10:00:00 +0800\r\nMessage-ID: <wang-1@example.cn>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}").encode()


async def _case_of(gw: Gateway, source_ref: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await gw.store.read(lambda tx: tx.fetchone(
            "SELECT document FROM cases WHERE source_ref = ?", (source_ref,)))
        if row is not None:
            return dict(json.loads(row[0]))
        assert asyncio.get_running_loop().time() < deadline, f"no case for {source_ref}"
        await asyncio.sleep(0.1)


async def test_call_then_mail_from_the_same_person_is_a_repeat(
    tmp_path: Path, store_url: str, dovecot_server: Dovecot, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, dovecot_server.password)
    user = dovecot_server.add_user()
    config = gateway_config(tmp_path, store_url, sources=[
        {"name": "hotline", "adapter": "cdr_webhook", "format": "generic_json",
         "auth": {"scheme": "none"}},
        {"name": "mail", "adapter": "imap_email", "host": "127.0.0.1",
         "port": dovecot_server.imaps_port, "ca_file": str(dovecot_server.ca_file),
         "username": user, "password": f"${{{PASSWORD_ENV}}}", "idle": False,
         "poll_interval_s": 0.3},
    ])
    gw = Gateway(config)
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            call = await client.post("/intake/hotline", json={
                "call_id": "c-1", "caller": "13800138000", "callee": "12345",
                "started_at": "2026-11-26T09:00:00+08:00",
                "answered_at": "2026-11-26T09:00:06+08:00",
                "ended_at": "2026-11-26T09:04:00+08:00", "agent": "1024"})
            notes = await client.post("/intake/hotline/calls/c-1/notes", json={
                "subject": "下水道堵塞", "content": MATTER, "caller_name": "王女士"})
        assert call.status_code in (200, 202), call.text
        assert notes.json()["outcome"] == "new", notes.text
        phone_code = notes.json()["case_code"]
        async with Mailbox(dovecot_server, user) as box:
            await box.append(_mail(user))
        mail_case = await _case_of(gw, "<wang-1@example.cn>")
    finally:
        await gw.stop()
    assert mail_case["channel"] == "email"
    assert mail_case["reporter"]["phone"] == "+8613800138000"
    assert mail_case["dedup"]["kind"] == "repeat"
    assert mail_case["dedup"]["repeat_of"] == phone_code
    assert mail_case["dedup"]["similarity"] > 0.4
