"""The ``citizen_email`` sink: the case code as a reply to the citizen's own mail.

The reply is threaded (``In-Reply-To`` the citizen's Message-ID, which the e-mail
channel keeps as the case's ``source_ref``; ``References`` the mail's own references
read from the raw journal, then that Message-ID; ``Re:`` the case subject), marked
``Auto-Submitted: auto-replied`` (RFC 3834) and ``X-Minsheng-Gateway`` (so the
gateway's own IMAP source files it as ``self_sent`` if it ever comes back), and sent
through the ``smtp`` block (gateway/support/mail.py).

Never answered: mail the IMAP source filtered (auto-replies, bounces, receipts,
newsletters never become cases), mail tagged ``no_auto_reply`` (lists, bulk,
``Precedence``, ``X-Loop``: normalizers/email/bulk.py), the gateway's own addresses
(``smtp.from_address``, every source's ``own_addresses``, this sink's
``own_addresses``) and daemon or no-reply senders.
"""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from pydantic import Field

from gateway.delivery.citizen.case_facts import CaseFacts
from gateway.delivery.citizen.notice_sink import CitizenSink, NoticeOptions, Skip
from gateway.delivery.citizen.templates import DEFAULT_EMAIL, MessageTemplate, NoticeValues
from gateway.delivery.sinks.base import SinkEnv
from gateway.model.errors import ConfigError, PermanentSinkError, RetriableSinkError
from gateway.store import journal
from gateway.support.keyed_ids import IdKind
from gateway.support.mail import Mailer, MailError, OutgoingMail
from gateway.support.mail_config import MailAddress

NO_AUTO_REPLY_TAGS = frozenset({"no_auto_reply", "newsletter"})
# Local parts that are machines, not people (RFC 3834 §2: never answer them).
AUTOMATED_LOCAL_PARTS = re.compile(
    r"^(mailer-?daemon|mail-daemon|postmaster|no-?reply|do-?not-?reply|donotreply|"
    r"bounces?|auto-?reply|notifications?)([+.-].*)?$", re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"^\s*(re|回复|回覆|答复)\s*[:：]", re.IGNORECASE)
_MSGID = re.compile(r"<[^<>\s]{1,250}>")
MAX_REFERENCES = 10  # the newest parent references kept (RFC 5322 allows trimming)


class CitizenEmailOptions(NoticeOptions):
    """``kind: citizen_email`` (docs/configuration.md#sinks)."""

    template: MessageTemplate = Field(default_factory=lambda: DEFAULT_EMAIL.model_copy())
    fallback_subject: str = Field(default="您的来信已受理 / Your mail was received",
                                  min_length=1, max_length=200)
    min_interval_hours: float = Field(default=24.0, ge=0, le=24 * 365)
    own_addresses: list[MailAddress] = Field(
        default_factory=list, description="never answered, besides smtp.from_address and "
        "every source's own_addresses")


def reply_subject(subject: str, fallback: str) -> str:
    """``Re: <subject>``, without stacking a second ``Re:``."""
    text = " ".join(subject.split())
    if not text:
        return fallback
    return text if _REPLY_PREFIX.match(text) else f"Re: {text}"


def parent_references(raw_mail: bytes | None) -> list[str]:
    """The Message-IDs in the citizen's own ``References`` (or, without it, a single
    ``In-Reply-To``), oldest first; ``[]`` when the raw mail is gone or has none."""
    if not raw_mail:
        return []
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw_mail)
    found = _MSGID.findall(str(headers.get("References") or ""))
    if not found:
        found = _MSGID.findall(str(headers.get("In-Reply-To") or ""))[:1]
    return found


class CitizenEmailSink(CitizenSink[CitizenEmailOptions]):
    notice_channel = "email"
    id_kind = IdKind.EMAIL

    def __init__(self, config: Any, options: Any) -> None:
        super().__init__(config, options)
        self.mailer: Mailer | None = None
        self.own: frozenset[str] = frozenset()

    def bind(self, env: SinkEnv) -> None:
        super().bind(env)
        self.mailer = env.mailer
        own = {a.lower() for a in self.options.own_addresses}
        if env.config.smtp is not None:
            own.add(env.config.smtp.from_address.lower())
        for source in env.config.sources:
            listed = source.options.get("own_addresses") or []
            own.update(str(a).strip().lower() for a in listed if isinstance(a, str))
        self.own = frozenset(own)

    async def start(self) -> None:
        if self.mailer is None:
            raise ConfigError([f"sinks ({self.name}): kind citizen_email needs the smtp block"])

    def recipient(self, case: CaseFacts) -> str | Skip:
        if case.channel != "email":
            return Skip("channel")
        if case.anonymous:
            return Skip("anonymous")
        if not case.reply_wanted:
            return Skip("not_wanted")
        if case.email is None or "@" not in case.email:
            return Skip("no_address")
        if NO_AUTO_REPLY_TAGS.intersection(case.tags):
            return Skip("no_auto_reply")
        address = case.email.strip().lower()
        if address in self.own:
            return Skip("own_address")
        if AUTOMATED_LOCAL_PARTS.match(address.rpartition("@")[0]):
            return Skip("automated_sender")
        return address

    async def send(self, case: CaseFacts, address: str, values: NoticeValues) -> str:
        assert self.mailer is not None
        parent = case.source_ref if _MSGID.fullmatch(case.source_ref) else None
        references: list[str] = []
        if parent is not None:
            references = [r for r in await self._parent_references(case) if r != parent]
            references = [*references[-(MAX_REFERENCES - 1):], parent]
        mail = OutgoingMail(
            to=(address,), subject=reply_subject(case.subject, self.options.fallback_subject),
            text=self.template.render(values), auto_submitted="auto-replied",
            in_reply_to=parent, references=tuple(references),
        )
        try:
            sent = await self.mailer.send(mail, "citizen_reply")
        except MailError as exc:
            if exc.retriable:
                raise RetriableSinkError(f"mail not sent: {exc.reason}") from None
            raise PermanentSinkError(f"mail not sent: {exc.reason}") from None
        return sent.message_id

    async def _parent_references(self, case: CaseFacts) -> list[str]:
        raw_id = case.raw_id
        if raw_id is None:
            return []
        entry = await self.store.read(lambda tx: journal.get(tx, raw_id))
        return parent_references(entry.record.payload if entry is not None else None)
