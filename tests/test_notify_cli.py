"""``minsheng notify test`` against a real SMTP server (aiosmtpd, STARTTLS and AUTH): one
mail with the configured template and a valid sample code; exit 1 saying why in Chinese
and English when it was not sent (a refused login, no SMS provider); exit 2 for an
address that is none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gateway.cli import main
from gateway.model.casecode import parse_code
from tests import dovecot
from tests.smtp_server import PASSWORD, SmtpServer, smtp_server

pytestmark = pytest.mark.skipif(not dovecot.available(), reason="needs openssl for the test CA")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    folder = tmp_path / "smtp"
    folder.mkdir()
    with smtp_server(folder) as running:
        yield running


def write_config(tmp_path: Path, smtp: dict[str, Any] | None, **extra: Any) -> Path:
    raw: dict[str, Any] = {"store": {"url": f"sqlite:///{tmp_path / 'gw.db'}"},
                           "data_dir": str(tmp_path / "var"),
                           "api": {"public_url": "https://12345.example.cn"}, **extra}
    if smtp is not None:
        raw["smtp"] = smtp
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_email_test_sends_the_configured_template(server: SmtpServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    config = write_config(
        tmp_path, server.config(password="${TEST_SMTP_PASSWORD}"),
        sinks=[{"name": "reply", "kind": "citizen_email",
                "template": {"zh": "编号 {case_code}，{received_at} 受理。\n查询：{lookup_url}"}}])
    result = CliRunner().invoke(main, ["notify", "test", "--channel", "email", "--to",
                                       "me@example.cn", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "已发送" in result.output and "sent (sample code" in result.output
    [got] = server.received
    assert got.recipients == ["me@example.cn"] and got.tls
    text = got.message.get_content()
    code = text.split()[1].split("，")[0]
    parse_code(code, "CY")  # a valid code: the check character holds
    assert f"https://12345.example.cn/lookup?case_code={code}" in text
    assert got.message["Subject"] == "民声网关测试消息 / Minsheng Gateway test message"


def test_failures_exit_1_and_say_why(server: SmtpServer, tmp_path: Path) -> None:
    runner = CliRunner()
    refused = runner.invoke(main, [
        "notify", "test", "--channel", "email", "--to", "me@example.cn", "--config",
        str(write_config(tmp_path, server.config(password="wrong-password")))])
    assert refused.exit_code == 1
    assert "未发送 / not sent: login refused (535)" in refused.output
    no_smtp = runner.invoke(main, ["notify", "test", "--channel", "email", "--to",
                                   "me@example.cn", "--config", str(write_config(tmp_path, None))])
    assert no_smtp.exit_code == 1 and "no smtp block" in no_smtp.output
    sms = runner.invoke(main, ["notify", "test", "--channel", "sms", "--to", "13800138000",
                               "--config", str(write_config(tmp_path, None))])
    assert sms.exit_code == 1 and "no SMS provider configured" in sms.output
    bad = runner.invoke(main, ["notify", "test", "--channel", "email", "--to", "nobody",
                               "--config", str(write_config(tmp_path, None))])
    assert bad.exit_code == 2 and "not an e-mail address" in bad.output
    assert server.received == []
