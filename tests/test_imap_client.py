"""The IMAP connection against a real Dovecot (tests/dovecot.py): IMAPS and STARTTLS with
certificate checks, LOGIN and AUTHENTICATE PLAIN, and errors mapped to what the poller
must do; plus the protocol helpers on their own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.imap_email.client import (
    ImapSession,
    encode_mailbox,
    parse_fetch,
    parse_internaldate,
    uid_set,
)
from adapters.imap_email.options import ImapEmailOptions
from gateway.model.errors import SourceMisconfigured, SourceUnavailable
from tests import dovecot
from tests.dovecot import Dovecot, Mailbox
from tests.pg import free_port

pytestmark = pytest.mark.skipif(not dovecot.available(),
                                reason="dovecot-imapd is not installed (make test installs it)")


def options(server: Dovecot, **overrides: Any) -> ImapEmailOptions:
    raw: dict[str, Any] = {
        "host": "127.0.0.1", "port": server.imaps_port, "ca_file": str(server.ca_file),
        "username": server.user, "password": server.password, "timeout_s": 10,
    }
    raw.update(overrides)
    return ImapEmailOptions.model_validate(raw)


async def _open(opts: ImapEmailOptions) -> ImapSession:
    session = ImapSession(opts, "mail")
    try:
        await session.open()
    except BaseException:
        await session.close()
        raise
    return session


@pytest.mark.parametrize(("security", "auth"), [
    ("imaps", "login"), ("imaps", "plain"), ("starttls", "login"), ("starttls", "plain"),
    ("none", "login"),
])
async def test_connect_and_log_in(dovecot_server: Dovecot, security: str, auth: str) -> None:
    port = dovecot_server.imaps_port if security == "imaps" else dovecot_server.imap_port
    session = await _open(options(dovecot_server, security=security, auth=auth, port=port))
    try:
        info = await session.select("INBOX")
        assert info.uidvalidity > 0
        assert "IDLE" in session.capabilities
        if security != "none":
            assert session.protocol.transport.get_extra_info("ssl_object") is not None
    finally:
        await session.close()


async def test_non_ascii_password_with_auth_plain(dovecot_server: Dovecot) -> None:
    user = dovecot_server.add_user()
    opts = options(dovecot_server, username=user, auth="plain")
    session = await _open(opts)
    await session.close()
    with pytest.raises(ValueError, match="non-ASCII password needs auth: plain"):
        options(dovecot_server, password="密码", auth="login")


async def test_wrong_password_is_misconfigured(dovecot_server: Dovecot) -> None:
    for auth in ("login", "plain"):
        with pytest.raises(SourceMisconfigured, match="login refused"):
            await _open(options(dovecot_server, password="wrong", auth=auth))


async def test_untrusted_certificate_is_misconfigured(dovecot_server: Dovecot) -> None:
    with pytest.raises(SourceMisconfigured, match="certificate not trusted"):
        await _open(options(dovecot_server, ca_file=None))
    with pytest.raises(SourceMisconfigured, match="certificate not trusted"):
        await _open(options(dovecot_server, ca_file=None, security="starttls",
                            port=dovecot_server.imap_port))
    # explicit opt-out
    session = await _open(options(dovecot_server, ca_file=None, verify_tls=False))
    await session.close()


async def test_host_name_is_checked(dovecot_server: Dovecot) -> None:
    """The certificate is for 127.0.0.1 and localhost; ::1 is not in it."""
    with pytest.raises((SourceMisconfigured, SourceUnavailable)):
        await _open(options(dovecot_server, host="::1"))


async def test_closed_port_and_missing_folder(dovecot_server: Dovecot) -> None:
    with pytest.raises(SourceUnavailable, match="无法连接"):
        await _open(options(dovecot_server, port=free_port()))
    session = await _open(options(dovecot_server))
    try:
        with pytest.raises(SourceMisconfigured, match="cannot be opened"):
            await session.select("No-Such-Folder")
        assert not await session.folder_exists("No-Such-Folder")
    finally:
        await session.close()


async def test_a_server_that_stops_answering_times_out(dovecot_server: Dovecot) -> None:
    session = await _open(options(dovecot_server, timeout_s=1))
    try:
        await session.select("INBOX")
        dovecot_server.pause()
        try:
            with pytest.raises(SourceUnavailable, match="超时"):
                await session.uids_after(0)
            with pytest.raises(SourceUnavailable, match="超时"):
                await _open(options(dovecot_server, timeout_s=1))  # no greeting
        finally:
            dovecot_server.resume()
    finally:
        await session.close()


async def test_fetch_search_store_and_move_with_a_chinese_folder(dovecot_server: Dovecot) -> None:
    user = dovecot_server.add_user()
    async with Mailbox(dovecot_server, user) as box:
        await box.create("已处理")
        for n in range(3):
            await box.append(f"From: a@example.cn\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode())
    session = await _open(options(dovecot_server, username=user))
    try:
        await session.select("INBOX")
        uids = await session.uids_after(0)
        assert uids == [1, 2, 3] and await session.uids_after(3) == []
        heads = await session.fetch(uids, "UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER]")
        assert [h.uid for h in heads] == uids
        assert heads[0].sections["BODY[HEADER]"].startswith(b"From: a@example.cn")
        assert heads[0].size and heads[0].internaldate is not None
        bodies = await session.fetch([2], "UID BODY.PEEK[]")
        assert bodies[0].sections["BODY[]"].endswith(b"body 1\r\n")
        await session.mark_seen(1)
        await session.move(3, "已处理")
    finally:
        await session.close()
    async with Mailbox(dovecot_server, user) as box:
        inbox = await box.flags("INBOX")
        assert set(inbox) == {1, 2} and "\\Seen" in inbox[1] and "\\Seen" not in inbox[2]
        assert len(await box.flags("已处理")) == 1


def test_modified_utf7_and_uid_sets() -> None:
    assert encode_mailbox("INBOX") == "INBOX"
    assert encode_mailbox("已处理") == "&XfJZBHQG-"
    assert encode_mailbox("A&B") == "A&-B"
    assert encode_mailbox("投诉/2019") == "&YpWLyQ-/2019"
    assert uid_set([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"


def test_parse_fetch_and_internaldate() -> None:
    lines = [
        b'1 FETCH (UID 11 RFC822.SIZE 53 FLAGS (\\Seen) INTERNALDATE "26-Nov-2019 12:54:00 '
        b'+0800" BODY[HEADER] {5}', bytearray(b"H: 1\n"), b")",
        b"2 FETCH (FLAGS (\\Seen))",  # unsolicited: no UID
        b"3 FETCH (UID 13 BODY[] {3}", bytearray(b"abc"), b" RFC822.SIZE 3)",
        b"Fetch completed.",
    ]
    found = parse_fetch(lines)
    assert [f.uid for f in found] == [11, 13]
    assert found[0].sections == {"BODY[HEADER]": b"H: 1\n"} and found[0].flags == ["\\Seen"]
    assert found[0].internaldate == datetime(2019, 11, 26, 4, 54, tzinfo=UTC)
    assert found[1].size == 3 and found[1].sections["BODY[]"] == b"abc"
    assert parse_internaldate(" 1-Jan-2020 00:00:00 -0130") == datetime(
        2020, 1, 1, 1, 30, tzinfo=UTC)
    assert parse_internaldate("garbage") is None
