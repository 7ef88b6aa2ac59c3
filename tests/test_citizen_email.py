"""The ``citizen_email`` sink against a real SMTP server (aiosmtpd on loopback with
STARTTLS and AUTH required, tests/smtp_server.py): the reply's threading and headers,
the link with and without ``api.public_url``, who is never answered (lists, the
gateway's own address, daemons, no reply wanted), the interval per address, and one mail
per case whatever the outbox does (a server failing once, the entry enqueued again).
The store part runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.model.errors import ConfigError
from gateway.support.config import parse_config
from tests import dovecot
from tests.citizen_rig import OWN_ADDRESS, PUBLIC_URL, CitizenRig, citizen_mail
from tests.conftest import raw_config
from tests.smtp_server import USER, SmtpServer, smtp_server

pytestmark = pytest.mark.skipif(not dovecot.available(), reason="needs openssl for the test CA")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    folder = tmp_path / "smtp"
    folder.mkdir()
    with smtp_server(folder) as running:
        yield running


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gateway.db'}"


def rig(tmp_path: Path, url: str, server: SmtpServer, **sink: Any) -> CitizenRig:
    return CitizenRig(tmp_path, url, {"kind": "citizen_email", **sink}, smtp=server.config())


async def test_reply_is_threaded_and_marked(tmp_path: Path, server: SmtpServer) -> None:
    parent_refs = "References: <first@example.cn> <second@example.cn>\r\n"
    async with rig(tmp_path, sqlite_url(tmp_path), server) as r:
        code = await r.mail(citizen_mail(1, headers=parent_refs))
        with capture_logs() as logs:
            assert await r.forward() == 1
        assert await r.states() == ["delivered"]
    [got] = server.received
    assert got.recipients == ["citizen@example.cn"]
    assert got.tls and got.login == USER  # STARTTLS, then AUTH
    message = got.message
    assert message["In-Reply-To"] == "<citizen-1@example.cn>"
    assert message["References"].split() == [
        "<first@example.cn>", "<second@example.cn>", "<citizen-1@example.cn>"]
    assert message["Subject"] == "Re: 下水道堵塞 1"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Minsheng-Gateway"] == "1"
    text = message.get_content()
    assert code in text
    assert f"{PUBLIC_URL}/lookup?case_code={code}" in text
    assert "2026-11-26 09:30" in text  # received_at in the config's time zone
    assert "Keep this code" in text  # the English beside the Chinese
    lines = [str(e) for e in logs]
    assert not any("citizen@example.cn" in line for line in lines)
    assert any(e.get("outcome") == "sent" and e.get("case_code") == code for e in logs)


async def test_without_public_url_the_link_line_is_left_out(tmp_path: Path,
                                                            server: SmtpServer) -> None:
    r = CitizenRig(tmp_path, sqlite_url(tmp_path), {"kind": "citizen_email"},
                   smtp=server.config(), api={"token": "test-api-token"})
    async with r:
        code = await r.mail(citizen_mail(2))
        await r.forward()
    text = server.received[0].message.get_content()
    assert code in text
    assert "lookup" not in text and "查询进度" not in text


async def test_a_reply_subject_is_not_stacked(tmp_path: Path, server: SmtpServer) -> None:
    async with rig(tmp_path, sqlite_url(tmp_path), server) as r:
        await r.mail(citizen_mail(3, subject="Re: 回复一下"))
        await r.forward()
    assert server.received[0].message["Subject"] == "Re: 回复一下 3"


@pytest.mark.parametrize(("sender", "headers", "reason"), [
    ("citizen@example.cn", "List-Id: <residents.example.cn>\r\n", "no_auto_reply"),
    ("citizen@example.cn", "Precedence: bulk\r\n", "no_auto_reply"),
    (OWN_ADDRESS, "", "own_address"),
    ("other-desk@12345.example.cn", "", "own_address"),
    ("MAILER-DAEMON@mx.example.cn", "", "automated_sender"),
    ("no-reply@example.cn", "", "automated_sender"),
])
async def test_never_answered(tmp_path: Path, server: SmtpServer, sender: str, headers: str,
                              reason: str) -> None:
    async with rig(tmp_path, sqlite_url(tmp_path), server,
                   own_addresses=["other-desk@12345.example.cn"]) as r:
        await r.mail(citizen_mail(4, sender=sender, headers=headers))
        assert await r.forward() == 1
        assert await r.states() == ["delivered"]  # settled: nothing is owed
        assert r.sink.skipped[reason] == 1
    assert server.received == []


async def test_web_and_phone_cases_get_no_mail(tmp_path: Path, server: SmtpServer) -> None:
    form = ('{"name":"黄女士","phone":"13800138000","email":"huang@example.cn",'
            '"content":"小区门口共享单车堆放严重"}').encode()
    async with rig(tmp_path, sqlite_url(tmp_path), server) as r:
        await r.file("web", "web", form, "application/json")
        await r.forward()
        assert r.sink.skipped["channel"] == 1
    assert server.received == []


async def test_interval_per_address(tmp_path: Path, store_url: str, server: SmtpServer) -> None:
    async with rig(tmp_path, store_url, server, min_interval_hours=12) as r:
        first = await r.mail(citizen_mail(5))
        second = await r.mail(citizen_mail(6, sender="Citizen@Example.CN"))
        other = await r.mail(citizen_mail(7, sender="neighbour@example.cn"))
        # the third is related to the first two: their cases get an update entry, and an
        # update never sends a second message
        assert await r.forward() == 4
        assert await r.states() == ["delivered"] * 4
        assert r.sink.skipped["update"] == 1
        notices = await r.notices()
        stored = await r.store.read(lambda tx: tx.fetchall(
            "SELECT recipient_key FROM citizen_notices"))
    assert sorted(m.recipients[0] for m in (server.received)) == [
        "citizen@example.cn", "neighbour@example.cn"]
    assert sorted(notices) == sorted([(first, "sent", None), (second, "skipped", "interval"),
                                      (other, "sent", None)])
    assert not any("@" in str(row[0]) for row in stored)  # only keyed digests


async def test_no_interval_when_zero(tmp_path: Path, server: SmtpServer) -> None:
    async with rig(tmp_path, sqlite_url(tmp_path), server, min_interval_hours=0) as r:
        await r.mail(citizen_mail(8))
        await r.mail(citizen_mail(9))
        await r.forward()
    assert len(server.received) == 2


async def test_failing_once_is_retried_and_sent_once(tmp_path: Path, store_url: str,
                                                     server: SmtpServer) -> None:
    server.fail_next = 1
    async with rig(tmp_path, store_url, server) as r:
        code = await r.mail(citizen_mail(10))
        await r.forward()
        assert await r.states() == ["pending"]  # 451: rescheduled
        assert r.sink.outcomes["failed"] == 1
        assert await r.notices() == []
        await r.make_due()
        assert await r.forward() == 1
        assert await r.states() == ["delivered"]
        # the same case enqueued again (a replay, a second entry): nothing more is sent
        await r.enqueue_again(code)
        assert await r.forward() == 1
        assert await r.states() == ["delivered", "delivered"]
        assert r.sink.outcomes["already_sent"] == 1
    assert len(server.received) == 1


async def test_refused_login_is_a_dead_letter(tmp_path: Path, server: SmtpServer) -> None:
    r = CitizenRig(tmp_path, sqlite_url(tmp_path), {"kind": "citizen_email"},
                   smtp=server.config(password="wrong-password"))
    async with r:
        await r.mail(citizen_mail(11))
        await r.forward()
        assert await r.states() == ["dead"]
    assert server.received == []


def test_config_needs_smtp_and_known_placeholders(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with pytest.raises(ConfigError) as no_smtp:
        parse_config(raw_config(tmp_path, url, sinks=[
            {"name": "notify", "kind": "citizen_email"}]))
    assert "citizen_email needs the smtp block" in str(no_smtp.value)
    with pytest.raises(ConfigError) as unknown:
        parse_config(raw_config(tmp_path, url, sinks=[{
            "name": "sms", "kind": "citizen_sms",
            "template": {"zh": "编号{case_code}，{case_id}"}}]))
    assert "sinks[0] (name=sms): template.zh: unknown placeholder {case_id}" in str(unknown.value)
