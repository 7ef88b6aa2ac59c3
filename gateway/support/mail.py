"""Outbound mail: messages built with the standard library's ``email`` package, sent over
SMTP with aiosmtplib (asyncio-native, STARTTLS/TLS and AUTH, kept up to date), so the event
loop never blocks on a mail server.

One ``Mailer`` per gateway serves every kind of mail it sends (``MailPurpose``): the weekly
report now, replies to citizens later. It counts outcomes per purpose for /metrics and logs
without addresses. A failure is a ``MailError`` saying whether trying again may help, so an
outbox delivery can retry or dead-letter it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Literal

import aiosmtplib

from gateway.support.logging import get_logger
from gateway.support.mail_config import SmtpConfig

log = get_logger("gateway.mail")

MailPurpose = Literal["weekly_report", "citizen_reply", "notify_test"]
MAIL_PURPOSES: tuple[MailPurpose, ...] = ("weekly_report", "citizen_reply", "notify_test")
# Marks every mail the gateway sends, so its own IMAP source files none of them as a
# complaint (normalizers/email/filters.py reads the same name: "self_sent").
GATEWAY_HEADER = "X-Minsheng-Gateway"
MailOutcome = Literal["sent", "failed"]
# RFC 3834: "auto-generated" for reports, "auto-replied" for answers to a citizen's mail.
AutoSubmitted = Literal["auto-generated", "auto-replied"]


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str  # "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    # A text/* attachment is UTF-8.


@dataclass(frozen=True)
class OutgoingMail:
    """What to send; the sender, Message-ID and Date are added by ``build_message``.
    ``in_reply_to``/``references`` (Message-IDs with their angle brackets) thread a reply."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    auto_submitted: AutoSubmitted = "auto-generated"
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class SentMail:
    message_id: str
    refused: int  # recipients the server refused while accepting the others


class MailError(Exception):
    """The mail was not sent. ``reason`` names the failure without any address;
    ``retriable``: a later attempt may succeed (connection, timeout, a 4xx answer)."""

    def __init__(self, reason: str, *, retriable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retriable = retriable


def build_message(mail: OutgoingMail, config: SmtpConfig, now: datetime) -> EmailMessage:
    """A MIME message: UTF-8 text (and HTML as its alternative), attachments, and the
    headers that keep auto-responders quiet (``Auto-Submitted``) and thread replies."""
    if not mail.to:
        raise ValueError("a mail needs at least one recipient")
    message = EmailMessage()
    domain = config.from_address.rpartition("@")[2]
    message["From"] = Address(display_name=config.from_name or "", addr_spec=config.from_address)
    message["To"] = ", ".join(mail.to)
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = mail.auto_submitted
    message["X-Auto-Response-Suppress"] = "All"  # Exchange's out-of-office replies
    message[GATEWAY_HEADER] = "1"
    if mail.in_reply_to is not None:
        message["In-Reply-To"] = mail.in_reply_to
    if mail.references:
        message["References"] = " ".join(mail.references)
    message.set_content(mail.text, subtype="plain", charset="utf-8", cte=_encoding(mail.text))
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html", charset="utf-8",
                                cte=_encoding(mail.html))
    for item in mail.attachments:
        maintype, _, subtype = item.mime_type.partition("/")
        params = {"charset": "utf-8"} if maintype == "text" else {}  # our texts are UTF-8
        message.add_attachment(item.content, maintype=maintype, subtype=subtype,
                               filename=item.filename, params=params)
    return message


def _encoding(text: str) -> str | None:
    """Base64 for Chinese text: 7-bit safe on every relay (8BITMIME is not everywhere)
    and shorter than quoted-printable for CJK; ASCII text is left to the library."""
    return None if text.isascii() else "base64"


def tls_context(config: SmtpConfig) -> ssl.SSLContext:
    """Certificate and host name always checked; ``ca_file`` trusted besides the system's."""
    cafile = str(config.ca_file) if config.ca_file is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def mail_error(exc: Exception) -> MailError:
    """Name an aiosmtplib or socket failure by its kind and SMTP code: the server's own
    text may quote addresses, so it is left out."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return MailError(f"login refused ({exc.code})", retriable=False)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return MailError("every recipient refused", retriable=False)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or type(exc) is aiosmtplib.SMTPException:
        # aiosmtplib's own refusals before asking the server: no STARTTLS, no AUTH offered
        return MailError("the server does not support what the config asks "
                         "(STARTTLS or AUTH)", retriable=False)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return MailError(f"the server answered {exc.code}", retriable=400 <= exc.code < 500)
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
            exc.__cause__, ssl.SSLCertVerificationError):
        return MailError("the server's certificate is not trusted", retriable=False)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return MailError("timed out", retriable=True)
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected
                  | OSError):
        return MailError(f"cannot reach the server ({type(exc).__name__})", retriable=True)
    return MailError(f"SMTP failure ({type(exc).__name__})", retriable=True)


class Mailer:
    """Sends ``OutgoingMail`` through the configured server, one connection per mail
    (the gateway sends a few mails a week, not a stream)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.outcomes: Counter[tuple[MailPurpose, MailOutcome]] = Counter()

    async def send(self, mail: OutgoingMail, purpose: MailPurpose) -> SentMail:
        """Send ``mail``; raise ``MailError`` (logged and counted) when it was not sent."""
        message = build_message(mail, self.config, datetime.now(UTC))
        try:
            refused = await self._deliver(message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            error = mail_error(exc)
            self.outcomes[(purpose, "failed")] += 1
            log.warning("mail_failed", purpose=purpose, reason=error.reason,
                        retriable=error.retriable, recipients=len(mail.to))
            raise error from None
        self.outcomes[(purpose, "sent")] += 1
        sent = SentMail(message_id=str(message["Message-ID"]), refused=refused)
        log.info("mail_sent", purpose=purpose, message_id=sent.message_id,
                 recipients=len(mail.to), refused=refused)
        return sent

    async def _deliver(self, message: EmailMessage) -> int:
        """Connect (and STARTTLS), log in, send; leaving the block says QUIT, also after a
        refused login. The socket is then closed at once: a TLS goodbye (close_notify)
        still pending would otherwise keep it open past a short-lived event loop (the
        command line's)."""
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host, port=config.server_port,
            use_tls=config.security == "tls", start_tls=config.security == "starttls",
            tls_context=tls_context(config) if config.security != "none" else None,
            timeout=config.timeout_s,
        )
        transport: asyncio.BaseTransport | None = None
        try:
            async with client:
                transport = client.transport
                if config.username is not None and config.password is not None:
                    await client.login(config.username, config.password.get_secret_value())
                errors, _ = await client.send_message(message)
        finally:
            if isinstance(transport, asyncio.Transport):  # a socket's, with abort()
                transport.abort()
        return len(errors)
