"""Outbound mail against a real SMTP server (aiosmtpd on loopback, tests/smtp_server.py:
STARTTLS with a test CA trusted through ``smtp.ca_file``, AUTH required): the message as
received (headers, UTF-8 body, the report's HTML and its xlsx), a refused login, a server
that is down and a certificate nobody trusts are counted failures; the Monday task mails
after writing, once per week across replicas, and keeps writing when the mail fails;
``minsheng report weekly --mail-to``; the gateway's mailer counts in /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from openpyxl import load_workbook
from structlog.testing import capture_logs

from gateway.cli import main
from gateway.model.errors import ConfigError
from gateway.reports.data import Week, WeeklyReport
from gateway.reports.mail import mail_report
from gateway.reports.schedule import WeeklyReports
from gateway.reports.weekly import weekly_report
from gateway.server.app import Gateway
from gateway.support.config import parse_config
from gateway.support.mail import Attachment, Mailer, MailError, OutgoingMail, build_message
from gateway.support.mail_config import SmtpConfig
from tests import dovecot
from tests.conftest import base_url, gateway_config, started_store
from tests.pg import free_port
from tests.smtp_server import PASSWORD, USER, SmtpServer, smtp_server

pytestmark = pytest.mark.skipif(not dovecot.available(), reason="needs openssl for the test CA")

WEEK = Week(2026, 48)
LEADERS = ["leader@district.example.cn", "office@district.example.cn"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    folder = tmp_path / "smtp"
    folder.mkdir()
    with smtp_server(folder) as running:
        yield running


def smtp(server: SmtpServer, **overrides: Any) -> SmtpConfig:
    return SmtpConfig.model_validate(server.config(**overrides))


async def empty_report(tmp_path: Path) -> WeeklyReport:
    """A report of a store without cases: every section, every sheet, zero figures."""
    tz = parse_config({}).tz
    async with started_store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        return await weekly_report(store, WEEK, tz, datetime(2026, 11, 30, 8, tzinfo=tz))


def parts(message: EmailMessage) -> dict[str, EmailMessage]:
    """The leaf parts by content type (an attachment by its file name)."""
    found: dict[str, EmailMessage] = {}
    for part in message.walk():
        if isinstance(part, EmailMessage) and not part.is_multipart():
            found[part.get_filename() or part.get_content_type()] = part
    return found


def test_message_headers_and_utf8_body() -> None:
    config = SmtpConfig(host="127.0.0.1", from_address="Hotline@12345.Example.CN",
                        from_name="民声网关 Gateway")
    mail = OutgoingMail(to=("a@example.cn",), subject="您的来信已受理 Received: CY-2026-0001",
                        text="编号 CY-2026-0001", auto_submitted="auto-replied",
                        in_reply_to="<m1@example.cn>", references=("<m0@x.cn>", "<m1@example.cn>"),
                        attachments=(Attachment("周报.md", "# 周报".encode(), "text/markdown"),))
    now = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    message = build_message(mail, config, now)
    assert str(message["Subject"]) == "您的来信已受理 Received: CY-2026-0001"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["From"].addresses[0].display_name == "民声网关 Gateway"
    assert message["From"].addresses[0].addr_spec == "Hotline@12345.example.cn"
    assert str(message["Message-ID"]).endswith("@12345.example.cn>")
    assert parsedate_to_datetime(str(message["Date"])) == now
    assert message["In-Reply-To"] == "<m1@example.cn>"
    assert message["References"] == "<m0@x.cn> <m1@example.cn>"
    assert message.as_bytes().isascii()  # encoded for any transport, 8BITMIME or not
    assert parts(message)["text/plain"].get_content().strip() == "编号 CY-2026-0001"
    assert parts(message)["周报.md"].get_content().strip() == "# 周报"


def test_a_header_cannot_be_split() -> None:
    config = SmtpConfig(host="127.0.0.1", from_address="hotline@12345.example.cn")
    mail = OutgoingMail(to=("a@example.cn",), subject="x\r\nBcc: victim@example.cn", text="x")
    with pytest.raises(ValueError):
        build_message(mail, config, datetime.now(UTC))


def test_config_errors_all_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTP_PASSWORD_UNSET", raising=False)
    with pytest.raises(ConfigError) as caught:
        parse_config({
            "smtp": {"host": "mail.example.cn", "security": "none", "port": 70000,
                     "from_address": "not-an-address", "username": "u",
                     "password": "${SMTP_PASSWORD_UNSET}", "ca_file": "/nonexistent.pem"},
            "reports": {"enabled": True, "folder": None,
                        "email_to": ["ok@example.cn", "bad address@example.cn"]},
        })
    text = str(caught.value)
    for expected in ("smtp.password: environment variable SMTP_PASSWORD_UNSET is not set",
                     "smtp.port:", "smtp.from_address: not an e-mail address",
                     "smtp.ca_file: CA file /nonexistent.pem not found",
                     "reports.email_to.1: not an e-mail address"):
        assert expected in text, text
    with pytest.raises(ConfigError, match=r"security none .* only allowed to a loopback host"):
        parse_config({"smtp": {"host": "mail.example.cn", "security": "none",
                               "from_address": "a@example.cn"}})
    with pytest.raises(ConfigError, match="username and password go together"):
        parse_config({"smtp": {"host": "mail.example.cn", "username": "u",
                               "from_address": "a@example.cn"}})
    with pytest.raises(ConfigError, match=r"reports.email_to: needs the smtp block"):
        parse_config({"reports": {"email_to": ["a@example.cn"]}})
    with pytest.raises(ConfigError, match="needs a folder or email_to"):
        parse_config({"reports": {"enabled": True, "folder": None}})


async def test_report_mail_over_starttls_with_auth(server: SmtpServer, tmp_path: Path) -> None:
    mailer = Mailer(smtp(server))
    report = await empty_report(tmp_path)
    with capture_logs() as logs:
        sent = await mail_report(mailer, report, LEADERS, ["xlsx", "md"])
    [got] = server.received
    assert got.tls and got.login == USER
    assert got.sender == "hotline@12345.example.cn" and got.recipients == LEADERS
    message = got.message
    assert str(message["Message-ID"]) == sent.message_id and sent.refused == 0
    assert str(message["Subject"]) == "民声网关周报 2026-W48 Weekly report of the citizen hotline"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/mixed"
    found = parts(message)
    assert "<svg" in found["text/html"].get_content()  # the report, charts inline
    assert "2026-W48" in found["text/plain"].get_content()  # the Markdown rendering
    xlsx = found["weekly-2026-W48.xlsx"]
    assert xlsx.get_content_type().endswith("spreadsheetml.sheet")
    workbook = load_workbook(BytesIO(xlsx.get_content()))
    assert len(workbook.sheetnames) >= 3
    assert found["weekly-2026-W48.md"].get_content().startswith("#")
    assert mailer.outcomes[("weekly_report", "sent")] == 1
    logged = repr(logs)
    assert "mail_sent" in logged and "@district" not in logged and PASSWORD not in logged


async def test_implicit_tls(tmp_path: Path) -> None:
    with smtp_server(tmp_path, implicit_tls=True) as running:
        mailer = Mailer(smtp(running, security="tls", username=None, password=None))
        await mailer.send(OutgoingMail(to=("a@example.cn",), subject="测试 test", text="正文"),
                          "weekly_report")
    [got] = running.received
    # aiosmtpd marks only STARTTLS sessions; a client with use_tls reaches nothing else.
    assert got.message.get_content().strip() == "正文"


@pytest.mark.parametrize(("overrides", "reason", "retriable"), [
    ({"password": "wrong-password"}, "login refused (535)", False),
    ({"ca_file": None}, "the server's certificate is not trusted", False),
])
async def test_refused_mail_is_a_counted_failure(server: SmtpServer, overrides: dict[str, Any],
                                                 reason: str, retriable: bool) -> None:
    mailer = Mailer(smtp(server, **overrides))
    mail = OutgoingMail(to=tuple(LEADERS), subject="s", text="t")
    with capture_logs() as logs, pytest.raises(MailError) as caught:
        await mailer.send(mail, "weekly_report")
    assert (caught.value.reason, caught.value.retriable) == (reason, retriable)
    assert mailer.outcomes[("weekly_report", "failed")] == 1 and not server.received
    assert "@" not in repr(logs) and "wrong-password" not in repr(logs)


async def test_server_down_is_a_retriable_counted_failure() -> None:
    config = SmtpConfig(host="127.0.0.1", port=free_port(), from_address="a@example.cn",
                        timeout_s=5)
    mailer = Mailer(config)
    with pytest.raises(MailError) as caught:
        await mailer.send(OutgoingMail(to=("b@example.cn",), subject="s", text="t"),
                          "weekly_report")
    assert caught.value.retriable and caught.value.reason.startswith("cannot reach the server")
    assert mailer.outcomes[("weekly_report", "failed")] == 1


def monday_config(tmp_path: Path, smtp_block: dict[str, Any]) -> Any:
    return parse_config({
        "store": {"url": f"sqlite:///{tmp_path / 'g.db'}"}, "smtp": smtp_block,
        "reports": {"enabled": True, "folder": str(tmp_path / "out"), "formats": ["md"],
                    "email_to": LEADERS[:1]},
    })


async def test_monday_task_writes_then_mails_once(server: SmtpServer, tmp_path: Path) -> None:
    config = monday_config(tmp_path, server.config())
    async with started_store(config.store.url) as store:
        reports = WeeklyReports(config, store)
        await reports.write_now()
        replica = WeeklyReports(config, store)  # another gateway on the same store
        await replica.write_now()
    last_week = Week.of(datetime.now(config.tz).date() - timedelta(weeks=1))
    assert [p.name for p in (tmp_path / "out").iterdir()] == [f"weekly-{last_week}.md"]
    [got] = server.received
    assert got.recipients == LEADERS[:1] and f"weekly-{last_week}.xlsx" in parts(got.message)
    assert reports.mailer is not None and replica.mailer is not None
    assert reports.mailer.outcomes[("weekly_report", "sent")] == 1
    assert replica.mailer.outcomes[("weekly_report", "sent")] == 0


async def test_monday_task_writes_when_the_mail_fails(tmp_path: Path) -> None:
    down = {"host": "127.0.0.1", "port": free_port(), "from_address": "a@example.cn",
            "timeout_s": 5}
    config = monday_config(tmp_path, down)
    async with started_store(config.store.url) as store:
        reports = WeeklyReports(config, store)
        await reports.write_now()
    assert len(list((tmp_path / "out").iterdir())) == 1
    assert reports.mailer is not None
    assert reports.mailer.outcomes[("weekly_report", "failed")] == 1


def write_config(tmp_path: Path, smtp_block: dict[str, Any]) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "store": {"url": f"sqlite:///{tmp_path / 'c.db'}"}, "smtp": smtp_block,
        "reports": {"email_attach": ["xlsx"]},
    }), encoding="utf-8")
    return path


def test_report_command_mails_now(server: SmtpServer, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    config = write_config(tmp_path, server.config(password="${TEST_SMTP_PASSWORD}"))
    result = CliRunner().invoke(main, ["report", "weekly", "--week", "2026-W48", "--mail-to",
                                       LEADERS[0], "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "mailed to 1 recipient" in result.output and "<html" not in result.output
    [got] = server.received
    assert got.recipients == LEADERS[:1] and "weekly-2026-W48.xlsx" in parts(got.message)


def test_report_command_says_when_the_mail_failed(server: SmtpServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, server.config(password="wrong-password"))
    runner = CliRunner()
    result = runner.invoke(main, ["report", "weekly", "--mail-to", LEADERS[0],
                                  "--config", str(config)])
    assert result.exit_code == 1
    assert "周报未发送 The report was not mailed: login refused (535)" in result.output
    bad = runner.invoke(main, ["report", "weekly", "--mail-to", "nobody", "--config",
                               str(config)])
    assert bad.exit_code == 2 and "not an e-mail address" in bad.output
    without = tmp_path / "plain.yaml"
    without.write_text("store: {url: 'sqlite:///%s'}\n" % (tmp_path / "p.db"), encoding="utf-8")
    refused = runner.invoke(main, ["report", "weekly", "--mail-to", LEADERS[0], "--config",
                                   str(without)])
    assert refused.exit_code == 2 and "needs the smtp block" in refused.output


async def test_gateway_shares_its_mailer_and_counts_in_metrics(server: SmtpServer,
                                                               tmp_path: Path) -> None:
    config = gateway_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", smtp=server.config(),
                            reports={"enabled": True, "folder": None, "email_to": LEADERS})
    gateway = Gateway(config)
    await gateway.start()
    try:
        assert gateway.reports is not None and gateway.reports.mailer is gateway.mailer
        await gateway.reports.write_now()
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{base_url(gateway)}/metrics")).text
    finally:
        await gateway.stop()
    assert 'minsheng_mails_total{outcome="sent",purpose="weekly_report"} 1.0' in metrics
    assert 'minsheng_mails_total{outcome="failed",purpose="weekly_report"} 0.0' in metrics
    assert len(server.received) == 1
