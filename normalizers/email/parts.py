"""The MIME tree of a mail: its readable text and its files (see ``normalizers.email``).

Multipart/alternative gives its plain text unless that is empty (then the HTML, made
clean text); inline images and attachments become files wherever they sit; a mail
inside the mail is kept whole as ``.eml`` (its text joins the body when shown inline);
a multipart whose boundary is lost is read as text; damaged base64 is read as far as it
goes. The walk is bounded in depth and in parts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import errors as email_errors
from email import policy
from email.message import Message

from gateway.model.attachments import sanitize_file_name
from normalizers.common.html_text import html_to_text
from normalizers.common.text import clean_line, clean_text
from normalizers.email.headers import decode_bytes, mime_params, raw_header

MEDIA_TYPE = "message/rfc822"
_SKIPPED_TYPES = {"application/pgp-signature", "application/pkcs7-signature",
                  "application/x-pkcs7-signature", "application/pgp-keys"}
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_MAX_PARTS = 300
_MAX_DEPTH = 20


@dataclass
class Parts:
    """What a walk over the MIME tree found."""

    texts: list[str] = field(default_factory=list)
    files: list[tuple[bytes, str, str]] = field(default_factory=list)  # data, name, type
    omitted: list[str] = field(default_factory=list)
    count: int = 0


def _content_type(part: Message, hint: str | None) -> tuple[str, dict[str, str]]:
    media, params = mime_params(raw_header(part, "content-type"), hint)
    if "/" not in media:
        media = "text/plain"
    return media, params


def _payload(part: Message) -> bytes:
    """The part's bytes, transfer encoding undone; damaged base64 is read as far as it goes."""
    encoding = (raw_header(part, "content-transfer-encoding") or "").strip().lower()
    if encoding == "base64":
        text = part.get_payload(decode=False)
        if isinstance(text, str):  # padding is dropped with the junk, then restored
            data = _NOT_BASE64.sub(b"", text.encode("ascii", "ignore"))
            data = data[: len(data) - 1] if len(data) % 4 == 1 else data
            with contextlib.suppress(binascii.Error, ValueError):
                return base64.b64decode(data + b"=" * (-len(data) % 4))
    decoded = part.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else b""


def _text_of(part: Message, media: str, params: dict[str, str]) -> str:
    text = decode_bytes(_payload(part), params.get("charset"))
    return html_to_text(text) if media == "text/html" else clean_text(text)


def _file_name(part: Message, params: dict[str, str], hint: str | None) -> str | None:
    _, disposition = mime_params(raw_header(part, "content-disposition"), hint)
    return disposition.get("filename") or params.get("name") or None


def _is_attachment(part: Message, media: str, name: str | None) -> bool:
    disposition, _ = mime_params(raw_header(part, "content-disposition"))
    if disposition == "attachment":
        return True
    if media in ("text/plain", "text/html"):
        return name is not None and disposition != "inline"
    return True


def _walk(part: Message, found: Parts, hint: str | None, depth: int, text_wanted: bool) -> None:
    found.count += 1
    if found.count > _MAX_PARTS or depth > _MAX_DEPTH:
        return
    media, params = _content_type(part, hint)
    if media == "message/rfc822":
        _forwarded(part, found, hint, depth, text_wanted)
    elif media.startswith("multipart/") and not part.is_multipart():
        if text_wanted:  # a multipart without its boundary: its bytes are all there is
            found.texts.append(_text_of(part, "text/plain", params))
    elif part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        chosen = _preferred(children, hint) if media == "multipart/alternative" else None
        for child in children:
            wanted = text_wanted and (chosen is None or child is chosen)
            _walk(child, found, hint, depth + 1, wanted)
    elif media not in _SKIPPED_TYPES:
        name = _file_name(part, params, hint)
        if media in ("text/plain", "text/html") and not _is_attachment(part, media, name):
            if text_wanted:
                found.texts.append(_text_of(part, media, params))
            return
        found.files.append((_payload(part), _attachment_name(name, media, found), media))


def _forwarded(part: Message, found: Parts, hint: str | None, depth: int,
               text_wanted: bool) -> None:
    """A mail inside the mail: kept whole as an ``.eml`` attachment; shown inline, its
    text is part of the body too (a forwarded mail is often the matter itself)."""
    name = _file_name(part, _content_type(part, hint)[1], hint)
    found.files.append((_forwarded_bytes(part), _attachment_name(name, MEDIA_TYPE, found),
                        MEDIA_TYPE))
    disposition, _ = mime_params(raw_header(part, "content-disposition"))
    inner = part.get_payload()
    if (text_wanted and disposition != "attachment" and isinstance(inner, list) and inner
            and isinstance(inner[0], Message)):
        texts = Parts(count=found.count)
        _walk(inner[0], texts, hint, depth + 1, True)
        found.texts.extend(texts.texts)
        found.count = texts.count


def _preferred(children: list[Message], hint: str | None) -> Message | None:
    """The part of a multipart/alternative to read: plain text unless it is empty."""
    best: Message | None = None
    for child in children:
        media, params = _content_type(child, hint)
        if media == "text/plain" and _text_of(child, media, params).strip():
            return child
        if media == "text/html" or child.is_multipart():
            best = child
    return best or (children[-1] if children else None)


def _forwarded_bytes(part: Message) -> bytes:
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        with contextlib.suppress(Exception):  # re-serializing broken mail: keep what we can
            return inner[0].as_bytes(policy=policy.compat32)
    return _payload(part)


def _attachment_name(name: str | None, media: str, found: Parts) -> str:
    if name:
        return sanitize_file_name(clean_line(name))
    extension = ".eml" if media == MEDIA_TYPE else mimetypes.guess_extension(media) or ""
    return f"attachment-{len(found.files) + 1}{extension}"


def allowed_type(media: str, allowed: list[str]) -> bool:
    for pattern in allowed:
        pattern = pattern.lower()
        if media == pattern or (pattern.endswith("*") and media.startswith(pattern[:-1])):
            return True
    return False


def file_media_type(media: str, name: str) -> str:
    """The declared type, or the file name's when the declared one says nothing."""
    generic = media in ("application/octet-stream", "application/unknown", "text/plain") \
        or mimetypes.guess_extension(media, strict=False) is None
    if generic:
        guessed, _ = mimetypes.guess_type(name, strict=False)
        if guessed and (media != "text/plain" or not guessed.startswith("text/")):
            return guessed
    return media


def text_charset(msg: Message) -> str | None:
    """The charset of the first text part: the best guess for raw 8-bit headers."""
    for index, part in enumerate(msg.walk()):
        if index > _MAX_PARTS:
            break
        media, params = mime_params(raw_header(part, "content-type"))
        if media.startswith("text/") and params.get("charset"):
            return params["charset"]
    return None


def read_parts(msg: Message, hint: str | None) -> Parts:
    found = Parts()
    try:
        _walk(msg, found, hint, 0, True)
    except (LookupError, ValueError, TypeError, AttributeError, IndexError,
            email_errors.MessageError) as exc:  # a part too broken to read: keep the rest
        found.omitted.append(f"无法读取的部分 / unreadable part ({type(exc).__name__})")
    return found


def iter_texts(msg: Message) -> Iterator[str]:
    """The readable texts of a mail (for tools and tests): every text part, decoded."""
    hint = text_charset(msg)
    yield from read_parts(msg, hint).texts
