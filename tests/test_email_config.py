"""The e-mail source's configuration: the shipped example passes ``check-config``, and the
options refuse what would be unsafe or cannot work, each with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.imap_email import ImapEmailOptions, ImapEmailSource
from gateway.support import registry
from normalizers.email import normalize
from tests.procs import ROOT, run_cli

EXAMPLE = ROOT / "config" / "examples" / "email.yaml"
BASE: dict[str, Any] = {"host": "mail.example.cn", "username": "u@example.cn",
                        "password": "secret"}


def test_the_example_config_passes_check_config() -> None:
    env = {"IMAP_PASSWORD": "x", "ARCHIVE_IMAP_PASSWORD": "y"}
    result = run_cli("check-config", "--config", str(EXAMPLE), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok (2 sources" in result.stdout


def test_a_missing_or_empty_password_is_reported_for_each_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IMAP_PASSWORD", raising=False)
    monkeypatch.delenv("ARCHIVE_IMAP_PASSWORD", raising=False)
    result = run_cli("check-config", "--config", str(EXAMPLE))
    assert result.returncode == 2
    assert "(name=mailbox): password: environment variable IMAP_PASSWORD" in result.stderr
    assert "(name=old-mailbox): password: environment variable ARCHIVE_IMAP_PASSWORD" \
        in result.stderr
    result = run_cli("check-config", "--config", str(EXAMPLE),
                     env={"IMAP_PASSWORD": "", "ARCHIVE_IMAP_PASSWORD": "y"})
    assert result.returncode == 2
    assert "(name=mailbox): password: must not be empty" in result.stderr


def test_registered_by_name() -> None:
    assert registry.adapter_class("imap_email") is ImapEmailSource
    assert registry.normalizer("email") is normalize
    assert ImapEmailSource.default_format == "email" and ImapEmailSource.channel == "email"


def test_defaults_are_the_safe_ones() -> None:
    options = ImapEmailOptions.model_validate(BASE)
    assert (options.security, options.server_port, options.verify_tls) == ("imaps", 993, True)
    assert options.post_action == "none" and options.folders == ["INBOX"]
    assert options.max_message_bytes == 25 * 1024 * 1024
    assert "secret" not in repr(options)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"post_action": "move"}, "needs move_to"),
    ({"post_action": "move", "move_to": "INBOX"}, "must not be one of the folders"),
    ({"security": "none"}, "only allowed to a loopback host"),
    ({"password": "密码"}, "needs auth: plain"),
    ({"folders": []}, "at least 1 item"),
    ({"folders": ["INBOX", "INBOX"]}, "listed twice"),
    ({"ca_file": "/nonexistent/ca.pem"}, "not found"),
    ({"post_action": "delete"}, "'none', 'seen' or 'move'"),
    ({"batch_size": 500}, "less than or equal to 200"),
    ({"idle_renew_s": 3600}, "less than or equal to 1740"),
    ({"colour": "blue"}, "Extra inputs are not permitted"),
])
def test_options_refuse_with_a_reason(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ImapEmailOptions.model_validate({**BASE, **overrides})


def test_plain_imap_to_loopback_and_a_non_ascii_password_with_plain(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    options = ImapEmailOptions.model_validate(
        {**BASE, "host": "127.0.0.1", "security": "none", "password": "密码", "auth": "plain",
         "ca_file": str(ca)})
    assert options.server_port == 143
