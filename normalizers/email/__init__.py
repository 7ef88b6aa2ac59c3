"""RFC 5322 mail to a complaint draft (normalizer ``email``). ``headers`` reads header
fields (shared with the IMAP adapter and the mail filters), ``parts`` the MIME tree.

Parsing uses Python's ``email`` package with ``policy.default``; header values and MIME
parameters are read from the raw fields and decoded here, because real Chinese mail
breaks the rules the stock decoders rely on:

- every piece of text (encoded words, raw 8-bit header bytes, bodies, file names) goes
  through the one charset decision of ``normalizers.common.charset.decide``: the label (for a
  raw header, the charset of the mail's text) wins when its reading is plausible, an
  alternative only when clearly more plausible; ``gb2312``/``gbk`` are read as GB18030
  (their superset: real ``gb2312`` mail carries GBK characters), ``big5`` as Big5-HKSCS;
- RFC 2047 is read as mail clients read it: adjacent words of one charset are joined
  before decoding (clients split characters, even base64 quanta, across words), spaces
  inside encoded text and missing separators are accepted, unknown labels fall back to
  the decision without a label;
- HTML-only mail becomes clean text (``normalizers.common.html_text``); quoted reply history is
  cut off (``normalizers.email.quoting``; the raw mail keeps it);
- attachments and inline images are handed to the pipeline (``draft.attach``) within the
  source's limits; what is left out is listed at the end of the body.

The source reference is the Message-ID (``<id@host>``) or, without one, ``sha256:`` of the
stable headers: the replay check is scoped per source, so a mail fetched twice makes
one case. Auto-replies, bounces and the gateway's own mail are filtered by the adapter
(``normalizers.email.filters``) before the pipeline sees them; bulk and list mail is
not, but is tagged ``no_auto_reply`` (``normalizers.email.bulk``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime

from pydantic import BaseModel, ConfigDict, Field

from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord, Reporter
from normalizers.common.phone import InvalidPhone, to_e164
from normalizers.common.text import clean_text, clip
from normalizers.email.bulk import bulk_tags
from normalizers.email.headers import (
    address_of,
    addresses,
    decode_bytes,
    decode_words,
    header_text,
    message_ref,
    mime_params,
    parse_message,
    raw_header,
    raw_headers,
    unfold,
)
from normalizers.email.parts import (
    MEDIA_TYPE,
    Parts,
    allowed_type,
    file_media_type,
    iter_texts,
    read_parts,
    text_charset,
)
from normalizers.email.quoting import strip_quoted

__all__ = [
    "DEFAULT_MEDIA_TYPES", "MEDIA_TYPE", "EmailSettings", "address_of", "addresses",
    "decode_bytes", "decode_words", "header_text", "iter_texts", "message_ref",
    "mime_params", "normalize", "parse_message", "raw_header", "raw_headers",
]

DEFAULT_MEDIA_TYPES = [
    "image/*", "audio/*", "video/*", "text/plain", "text/csv", "application/pdf",
    "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.*", "application/vnd.ms-works",
    "application/wps-office.*", "application/vnd.oasis.opendocument.*",
    "application/zip", "application/x-zip-compressed", "application/x-rar-compressed",
    "application/vnd.rar", "application/x-7z-compressed", "application/gzip",
    "application/x-gzip", "application/x-tar", "message/rfc822",
]
_FORWARD = re.compile(r"^\s*(?:[\[【]\s*)?(Fwd?|转发|轉寄|转寄)\s*[:：]", re.IGNORECASE)


class EmailSettings(BaseModel):
    """The normalizer's options (config keys of the source)."""

    model_config = ConfigDict(extra="ignore")

    max_attachments: int = Field(default=20, ge=0, le=200)
    max_attachment_mb: float = Field(default=10.0, gt=0)
    allowed_media_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MEDIA_TYPES),
        description="media types kept as attachments; 'image/*' style wildcards",
    )
    strip_quoted: bool = True
    max_body_chars: int = Field(default=20_000, ge=1000, le=50_000)


def _reported_at(msg: Message, received_at: datetime) -> datetime:
    value = raw_header(msg, "date")
    if value is None:
        return received_at
    try:
        when = parsedate_to_datetime(unfold(value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return received_at
    if when.tzinfo is None:  # "-0000": the sender's zone is unknown; RFC 5322 says UTC
        when = when.replace(tzinfo=UTC)
    return min(when, received_at)


def _reporter(msg: Message, hint: str | None) -> Reporter:
    sender = addresses(msg, "from", hint) or addresses(msg, "sender", hint)
    reply_to = addresses(msg, "reply-to", hint)
    email = (reply_to or sender)[0][1].lower() if reply_to or sender else None
    display = (sender[0][0] if sender else "") or (reply_to[0][0] if reply_to else "")
    name = display.strip("\"' ")[:100] or None
    if email is None:
        return Reporter(name=name, anonymous=True, reply_wanted=False)
    return Reporter(name=name, email=email)


def _body(found: Parts, settings: EmailSettings, forwarded: bool) -> str:
    text = clean_text("\n\n".join(t for t in found.texts if t.strip()))
    if settings.strip_quoted and not forwarded:
        text = strip_quoted(text).text
    limit = settings.max_body_chars
    if len(text) > limit:
        text = text[: limit - 60].rstrip() + "\n\n[正文过长，已截断 / body truncated]"
    if found.omitted:
        note = "；".join(found.omitted)
        text = f"{text}\n\n[未收录的附件 / attachments not kept: {note}]".strip()
    return text


def _attach(draft: ComplaintDraft, found: Parts, settings: EmailSettings) -> None:
    limit = int(settings.max_attachment_mb * 1024 * 1024)
    for data, name, declared in found.files:
        media = file_media_type(declared, name)
        if not data:
            continue
        if len(draft.attachments) >= settings.max_attachments:
            found.omitted.append(f"{name} (超过附件数量上限 / too many attachments)")
        elif len(data) > limit:
            found.omitted.append(
                f"{name} (超过 {settings.max_attachment_mb:g} MB / too large)")
        elif not allowed_type(media, settings.allowed_media_types):
            found.omitted.append(f"{name} (不接受 {media} 类型 / type not accepted)")
        else:
            draft.attach(data, name, media)


def _subject(msg: Message, hint: str | None, body: str) -> str:
    subject = header_text(msg, "subject", hint)
    if not subject:
        subject = clip(body.split("\n", 1)[0], 30)
    return clip(subject, 200)


def _tags(msg: Message) -> list[str]:
    """``reply`` for an answer to an earlier mail; ``no_auto_reply`` and ``newsletter``
    from the weak signals of ``normalizers.email.bulk``."""
    tags = []
    if raw_header(msg, "in-reply-to") or raw_header(msg, "references"):
        tags.append("reply")
    return tags + bulk_tags(msg)


def normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    """The complaint in one mail; ``Rejected`` when there is nothing to file."""
    settings = ctx.settings(EmailSettings)
    msg = parse_message(raw.payload)
    if not msg.keys():
        raise Rejected.one("message", "not_a_mail", "不是电子邮件（没有邮件头）",
                           "not an e-mail message (no header fields)")
    hint = text_charset(msg)
    found = read_parts(msg, hint)
    draft = ComplaintDraft(
        channel="email", source=raw.source, source_ref=message_ref(msg),
        received_at=raw.received_at, reported_at=_reported_at(msg, raw.received_at),
        reporter=_reporter(msg, hint), body="", tags=_tags(msg),
    )
    _attach(draft, found, settings)
    body = _body(found, settings, bool(_FORWARD.match(header_text(msg, "subject", hint))))
    if not body and draft.attachments:
        body = "（邮件正文为空，见附件）(empty mail body: see the attachments)"
        draft.mark_text_generated()  # our words, not the writer's: dedup must not compare them
    subject = _subject(msg, hint, body)
    if not body and not subject:
        raise Rejected.one("body", "required", "邮件没有正文、标题或附件",
                           "the mail has no text, subject or attachment")
    draft.body = body or subject
    draft.subject = subject
    if draft.reporter.phone is None:
        draft.reporter.phone = contact_phone(body)
    return draft


# "联系电话：138 0013 8000", "手机 0532-88886666", "Tel: +86 138…": a number the writer
# labels as theirs. It lets the gateway see that a mail and an earlier call come from the
# same person (a repeat). Unlabelled numbers in the text are not taken.
_CONTACT = re.compile(
    r"(?:联系电话|联系方式|联系手机|电话|手机|tel|phone|mobile)\s*(?:号码)?\s*[:：]?\s*"
    r"(\+?[\d(（][\d\s\-()（）]{6,20}\d)",
    re.IGNORECASE,
)


def contact_phone(text: str) -> str | None:
    """The first labelled, valid Chinese mobile or landline number in ``text`` (E.164)."""
    for match in _CONTACT.finditer(text):
        try:
            return to_e164(match.group(1))
        except InvalidPhone:
            continue
    return None
