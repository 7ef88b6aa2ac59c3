"""End to end: a mail in through IMAP (a real Dovecot), a case, a reply out at a real SMTP
server (aiosmtpd with STARTTLS and AUTH), all through a running gateway. Beside the
citizen's mail, an out-of-office reply and a bounce arrive: they become no case and get
no reply; the gateway's own reply, coming back into the mailbox, neither. The sink's
decisions show in /metrics and its entries in the outbox figures of ``minsheng status``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.server.app import Gateway
from gateway.store import outbox
from tests import dovecot
from tests.citizen_rig import OWN_ADDRESS, PUBLIC_URL, citizen_mail
from tests.conftest import base_url, gateway_config
from tests.dovecot import Dovecot, Mailbox
from tests.smtp_server import SmtpServer, smtp_server

pytestmark = pytest.mark.skipif(not dovecot.available(),
                                reason="dovecot-imapd is not installed (make test installs it)")
PASSWORD_ENV = "MINSHENG_TEST_IMAP_PASSWORD"

AUTO_REPLY = (f"From: away@example.cn\r\nTo: {OWN_ADDRESS}\r\nSubject: 自动回复: 休假中\r\n"
              "Auto-Submitted: auto-replied\r\nMessage-ID: <away-1@example.cn>\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n\r\n我正在休假。\r\n").encode()
BOUNCE = (f"From: MAILER-DAEMON@mx.example.cn\r\nTo: {OWN_ADDRESS}\r\n"
          "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-1@mx.example.cn>\r\n"
          "Content-Type: text/plain\r\n\r\nThis is the mail system.\r\n").encode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    folder = tmp_path / "smtp"
    folder.mkdir()
    with smtp_server(folder) as running:
        yield running


async def until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Wait for ``condition`` (a bound on waiting, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout:g} s: {what}")


async def test_mail_in_case_reply_out(dovecot_server: Dovecot, server: SmtpServer,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, dovecot_server.password)
    user = dovecot_server.add_user()
    config = gateway_config(
        tmp_path, f"sqlite:///{tmp_path}/gw.db", smtp=server.config(),
        api={"token": "test-api-token", "public_url": PUBLIC_URL},
        sources=[{"name": "mail", "adapter": "imap_email", "host": "127.0.0.1",
                  "port": dovecot_server.imaps_port, "ca_file": str(dovecot_server.ca_file),
                  "username": user, "password": f"${{{PASSWORD_ENV}}}", "idle": False,
                  "poll_interval_s": 0.3, "timeout_s": 10, "own_addresses": [OWN_ADDRESS]}],
        sinks=[{"name": "reply", "kind": "citizen_email", "poll_interval_s": 0.2}])
    async with Mailbox(dovecot_server, user) as box:
        for data in (citizen_mail(1), AUTO_REPLY, BOUNCE):
            await box.append(data)
    gw = Gateway(config)
    await gw.start()
    try:
        async def journaled(n: int) -> bool:
            row = await gw.store.read(lambda tx: tx.fetchone("SELECT COUNT(*) FROM raw_records"))
            return int(row[0]) >= n

        async def settled() -> bool:
            stats = await gw.store.read(outbox.stats)
            return stats.get("reply", {}).get("pending", 1) == 0

        await until(lambda: journaled(3), 30, "three mails journaled")
        await until(settled, 30, "the outbox delivered")
        [reply] = server.received
        assert reply.recipients == ["citizen@example.cn"]
        assert reply.message["In-Reply-To"] == "<citizen-1@example.cn>"
        assert reply.message["Auto-Submitted"] == "auto-replied"
        code = (await gw.store.read(lambda tx: tx.fetchone("SELECT case_code FROM cases")))[0]
        assert code in reply.message.get_content()

        # the reply comes back into the mailbox (a copy, a loop): filtered, no second reply
        async with Mailbox(dovecot_server, user) as box:
            await box.append(bytes(reply.message))
        await until(lambda: journaled(4), 30, "the gateway's own reply journaled")
        statuses = await gw.store.read(lambda tx: tx.fetchall(
            "SELECT status FROM raw_records ORDER BY id"))
        assert [s[0] for s in statuses] == ["accepted", "filtered", "filtered", "filtered"]
        stats = await gw.store.read(outbox.stats)
        assert stats["reply"]["delivered"] == 1 and stats["reply"]["dead"] == 0

        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            metrics = (await client.get("/metrics")).text
        assert 'minsheng_citizen_notices_total{outcome="sent",sink="reply"} 1.0' in metrics
        assert 'minsheng_mails_total{outcome="sent",purpose="citizen_reply"} 1.0' in metrics
    finally:
        await gw.stop()
    assert len(server.received) == 1
