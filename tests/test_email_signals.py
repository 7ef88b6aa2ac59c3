"""Issue 17, item 3: bulk is not the same as automatic.

``Precedence: bulk|list|junk``, ``List-*`` and ``X-Loop`` no longer filter a mail: it is
filed, tagged ``no_auto_reply`` (the acknowledgement mail reads that tag). Only strong
signals filter; a newsletter (``List-Unsubscribe``, no reply or forward) is filtered or,
with ``newsletters: tag``, filed tagged ``newsletter``; ``filter_senders`` patterns
filter. Unit tests over the fixtures, then the IMAP source against a real Dovecot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.imap_email import ImapEmailOptions
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft
from normalizers.email import filters as mail_filters
from normalizers.email import normalize, parse_message
from normalizers.email.bulk import is_newsletter, no_auto_reply_signal, personal_signal
from tests import dovecot
from tests.dovecot import Dovecot
from tests.procs import ROOT, run_cli
from tests.test_email_normalize import FIXTURES, OWN, complaint, raw_of
from tests.test_imap_intake import PASSWORD_ENV, Rig, append_all, source

BASE: dict[str, Any] = {"host": "mail.example.cn", "username": "u@example.cn",
                        "password": "secret"}


def header(text: str) -> Any:
    data = f"From: citizen@example.cn\r\nTo: hotline@12345.example.cn\r\n{text}\r\n\r\nx\r\n"
    return parse_message(data.encode())


def _normalized(data: bytes) -> ComplaintDraft:
    return normalize(raw_of(data), NormalizerContext("mail"))


def test_a_personal_reply_through_a_list_is_a_case_never_auto_answered() -> None:
    draft = complaint("gb2312_bulk_reply.eml")
    assert draft.tags == ["reply", "no_auto_reply"]
    assert draft.subject == "回复：小区垃圾清运问题"


@pytest.mark.parametrize(("headers", "signal"), [
    ("Precedence: bulk", "Precedence: bulk"), ("Precedence: list", "Precedence: list"),
    ("Precedence: junk", "Precedence: junk"), ("List-Id: <x.example.cn>", "List-Id header"),
    ("List-Unsubscribe: <mailto:u@x.cn>", "List-Unsubscribe header"),
    ("X-Loop: list@x.cn", "X-Loop: list@x.cn"), ("Precedence: first-class", None),
    ("Subject: hello", None),
])
def test_weak_signals_mean_no_auto_reply_and_never_filter(headers: str,
                                                          signal: str | None) -> None:
    msg = header(headers)
    assert no_auto_reply_signal(msg) == signal
    if not headers.startswith("List-Unsubscribe"):
        assert mail_filters.check(msg, OWN) is None


@pytest.mark.parametrize(("headers", "personal"), [
    ("Subject: Re: 路灯", True), ("Subject: 回复：路灯", True), ("Subject: AW: Lampe", True),
    ("Subject: [居民群] 转发：停水通知", True), ("In-Reply-To: <a@b.cn>", True),
    ("Subject: 本周资讯", False), ("Subject: Reply needed", False),
])
def test_personal_signals(headers: str, personal: bool) -> None:
    assert (personal_signal(header(headers)) is not None) == personal
    newsletter = header(f"{headers}\r\nList-Unsubscribe: <mailto:u@x.cn>")
    assert is_newsletter(newsletter) == (not personal)


def test_a_newsletter_is_filtered_by_default_and_filed_under_a_tag_by_config() -> None:
    data = (FIXTURES / "newsletter.eml").read_bytes()
    msg = parse_message(data, headers_only=True)
    verdict = mail_filters.check(msg, OWN)
    assert verdict is not None and verdict.code == "newsletter"
    assert mail_filters.check(msg, OWN, newsletters="tag") is None
    tagged = ImapEmailOptions.model_validate({**BASE, "newsletters": "tag"})
    assert mail_filters.check_for_source(msg, tagged) is None
    draft = _normalized(data)  # what the pipeline files when the source says tag
    assert draft.tags == ["no_auto_reply", "newsletter"]
    assert draft.subject == "本周城市资讯 第12期"


def test_strong_signals_win_over_bulk() -> None:
    for name, code in (("auto_submitted_bulk.eml", "auto_reply"), ("dsn_gbk.eml", "bounce")):
        verdict = mail_filters.check(parse_message((FIXTURES / name).read_bytes()), OWN)
        assert verdict is not None and verdict.code == code, name


@pytest.mark.parametrize(("sender", "filtered"), [
    ("noreply@example.cn", True), ("NoReply@Example.CN", True),
    ("alerts@news.example.com", True), ("citizen@example.cn", False),
])
def test_configured_sender_patterns_filter(sender: str, filtered: bool) -> None:
    options = ImapEmailOptions.model_validate(
        {**BASE, "filter_senders": ["noreply@*", "*@news.example.com"]})
    msg = parse_message(f"From: {sender}\r\nSubject: x\r\n\r\nbody\r\n".encode())
    verdict = mail_filters.check_for_source(msg, options)
    assert (verdict is not None and verdict.code == "sender") == filtered
    if verdict is not None:
        assert verdict.as_detail()["reason"].startswith("配置为过滤的发件人")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"filter_senders": ["noreply"]}, "with @"),
    ({"newsletters": "drop"}, "'filter' or 'tag'"),
])
def test_filter_options_refuse_with_a_reason(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ImapEmailOptions.model_validate({**BASE, **overrides})


def test_defaults_filter_newsletters_and_no_sender() -> None:
    options = ImapEmailOptions.model_validate(BASE)
    assert options.newsletters == "filter" and options.filter_senders == []


# -- the IMAP source, against a real Dovecot -------------------------------------------------


@pytest.fixture
def mail_server(dovecot_server: Dovecot, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dovecot]:
    monkeypatch.setenv(PASSWORD_ENV, dovecot_server.password)
    yield dovecot_server


@pytest.mark.skipif(not dovecot.available(), reason="dovecot-imapd is not installed")
async def test_the_imap_source_files_bulk_and_tags_newsletters_by_config(
    mail_server: Dovecot, tmp_path: Path
) -> None:
    user = mail_server.add_user()
    noreply = (b"From: noreply@alerts.example.cn\r\nTo: hotline@12345.example.cn\r\n"
               b"Subject: alert\r\nMessage-ID: <alert-1@alerts.example.cn>\r\n\r\nping\r\n")
    await append_all(mail_server, user, [
        (FIXTURES / name).read_bytes() for name in (
            "gb2312_bulk_reply.eml", "newsletter.eml", "auto_submitted_bulk.eml",
            "dsn_gbk.eml")] + [noreply])
    options = source(mail_server, user, newsletters="tag", filter_senders=["noreply@*"])
    async with Rig(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}", options) as rig:
        assert await rig.poll() == 2
        documents = {d["source_ref"]: d for d in (
            json.loads(r[0]) for r in await rig.rows("SELECT document FROM cases"))}
        assert documents["<gb2312-bulk-1@example.cn>"]["tags"] == ["reply", "no_auto_reply"]
        assert documents["<newsletter-12@weekly.example.cn>"]["tags"] == [
            "no_auto_reply", "newsletter"]
        filtered = sorted((ref, d["filter"]) for status, ref, d in await rig.journal()
                          if status == "filtered")
        assert filtered == [("<alert-1@alerts.example.cn>", "sender"),
                            ("<auto-submitted-1@zjj.example.cn>", "auto_reply"),
                            ("<dsn-gbk-1@mx.example.cn>", "bounce")]


def test_the_cli_applies_the_source_s_filter_options(tmp_path: Path) -> None:
    """``minsheng normalize --config --source`` runs the same check as the IMAP source."""
    example = (ROOT / "config" / "examples" / "email.yaml").read_text(encoding="utf-8")
    config = tmp_path / "email.yaml"
    config.write_text(example.replace("newsletters: filter", "newsletters: tag"),
                      encoding="utf-8")
    env = {"IMAP_PASSWORD": "x", "ARCHIVE_IMAP_PASSWORD": "y"}
    args = ("normalize", "--format", "email", "--channel", "email", "--config", str(config),
            "--source", "mailbox")
    filed = run_cli(*args, str(FIXTURES / "newsletter.eml"), env=env)
    assert filed.returncode == 0, filed.stderr
    assert json.loads(filed.stdout)["tags"] == ["no_auto_reply", "newsletter"]
    noreply = tmp_path / "noreply.eml"
    noreply.write_bytes(b"From: NoReply@alerts.example.cn\r\nSubject: x\r\n\r\nping\r\n")
    filtered = run_cli(*args, str(noreply), env=env)
    assert filtered.returncode == 3, filtered.stderr
    assert json.loads(filtered.stdout)["filtered"]["filter"] == "sender"
    default = run_cli("normalize", "--format", "email", str(FIXTURES / "newsletter.eml"))
    assert default.returncode == 3  # without a source: newsletters are filtered
