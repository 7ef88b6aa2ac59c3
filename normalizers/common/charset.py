"""Bytes to text for pages, feeds and mails: one decision, by plausibility.

Real pages declare ``gb2312`` in ``<meta>`` while being UTF-8, feeds declare one
encoding and use another, old Chinese mail clients send raw GBK headers in a mail
labelled ``us-ascii``, and German mail says ``iso-8859-1`` and means it. So:

1. a byte-order mark (or, in XML, the wide-encoding shape of ``<?xml``) decides;
2. bytes that are valid UTF-8 (and not plain ASCII) are UTF-8, whatever the label
   says, unless that UTF-8 is itself GBK/Big5 once read as Latin-1 (double encoding):
   then the original bytes are recovered and decided again (``repaired``);
3. the declared label (HTTP ``charset``, ``<?xml encoding>``, ``<meta charset>``, a
   MIME ``charset``; for a raw mail header the charset of the mail's text as a weaker
   hint), widened to its superset (GB2312/GBK → GB18030, Big5 → Big5-HKSCS,
   ISO-8859-1/ASCII → windows-1252, EUC-KR → cp949), wins when its reading is
   *plausible* (``normalizers.common.plausibility``);
4. otherwise each alternative (GB18030, Big5-HKSCS, windows-1252, KOI8-R, cp1251,
   Shift_JIS/cp932, cp949) is read and measured; the least implausible replaces the
   label only when clearly (``CLEAR_MARGIN``, and half) less implausible, else the
   label stays; without a label the least implausible is taken, GB18030
   first among equals;
5. as a last resort the table that reads most of the bytes, the rest dropped.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from dataclasses import dataclass
from typing import Literal

from normalizers.common.plausibility import PLAUSIBLE, implausibility

# Labels widened to the encoding that is a superset of what they name.
_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "ms936": "gb18030",
    "euc-cn": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030", "gb18030": "gb18030",
    "big5": "big5hkscs", "big5-hkscs": "big5hkscs", "cp950": "big5hkscs",
    "x-x-big5": "big5hkscs", "big5hkscs": "big5hkscs",
    "iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
    "us-ascii": "cp1252", "euc-kr": "cp949", "euc_kr": "cp949", "ks_c_5601-1987": "cp949",
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# XML without a byte-order mark in a wide encoding shows in its first bytes (XML 1.0 F.1).
_WIDE_XML = (
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"), (b"<\x00?\x00", "utf-16-le"),
)
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_META = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE
)
_SNIFF_BYTES = 4096


How = Literal["bom", "utf-8", "repaired", "declared", "detected", "fallback"]


@dataclass(frozen=True)
class Decoded:
    """Text and how it was read (see the module's docstring for each ``how``)."""

    text: str
    encoding: str
    how: How
    declared: str | None = None


def codec_name(label: str | None) -> str | None:
    """The Python codec to use for a declared label, widened; ``None`` if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    wide = _SUPERSETS.get(label)
    if wide is not None:
        return wide
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


def media_type(content_type: str | None) -> str:
    """``text/html`` from ``Text/HTML; charset=GBK``: the one place a content type is cut
    to its media type (adapters and normalizers alike)."""
    return (content_type or "").split(";")[0].strip().lower()


def charset_param(content_type: str | None) -> str | None:
    """``gbk`` from ``text/html; charset="GBK"``."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip("\"'"):
            return value.strip().strip("\"'")
    return None


def declared_charset(data: bytes) -> str | None:
    """The encoding a document says it has, in its XML declaration or ``<meta>``."""
    head = data[:_SNIFF_BYTES]
    found = _XML_DECL.match(head) or _META.search(head)
    return found.group(1).decode("ascii") if found else None


def _try(data: bytes, encoding: str | None) -> str | None:
    if encoding is None:
        return None
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _bom(data: bytes) -> tuple[str, str] | None:
    """A byte-order mark, or the wide-encoding shape of ``<?xml``, decides."""
    for mark, encoding in _BOMS:
        if data.startswith(mark):
            text = data[len(mark):].decode(encoding, errors="replace")
            return text, encoding
    for start, encoding in _WIDE_XML:
        if data.startswith(start):
            return data.decode(encoding, errors="replace"), encoding
    return None


# Candidates when the label is missing or implausible, in order of preference among
# equally plausible readings (this gateway's mail and pages are mostly Chinese).
ALTERNATIVES = ("gb18030", "big5hkscs", "cp1252", "koi8_r", "cp1251", "cp932", "cp949")
# An alternative replaces an implausible label only when it is this much less
# implausible and at most half as implausible (a text with a few rare names must not
# flip to another table; a label is never replaced while plausible).
CLEAR_MARGIN = 0.15


@dataclass(frozen=True)
class _Reading:
    text: str
    encoding: str
    score: float


# A reading may lose this many bytes (a character cut off at the end, a stray byte)
# and still count: its U+FFFD weigh in its implausibility and are dropped from the text.
_TOLERATED_ERRORS = 2
_TOLERATED_SHARE = 0.01


def _reading(data: bytes, encoding: str | None) -> _Reading | None:
    if encoding is None:
        return None
    text = _try(data, encoding)
    if text is not None:
        return _Reading(text, encoding, implausibility(text))
    try:
        text = data.decode(encoding, errors="replace")
    except LookupError:
        return None
    errors = text.count("\ufffd")
    if errors > max(_TOLERATED_ERRORS, len(text) * _TOLERATED_SHARE):
        return None
    return _Reading(text.replace("\ufffd", ""), encoding, implausibility(text))


def _best_alternative(data: bytes, skip: str | None) -> _Reading | None:
    best: _Reading | None = None
    for encoding in ALTERNATIVES:
        if encoding == skip:
            continue
        found = _reading(data, encoding)
        if found is not None and (best is None or found.score < best.score):
            best = found
    return best


def _clearly_better(alternative: _Reading, label: _Reading) -> bool:
    return (alternative.score + CLEAR_MARGIN <= label.score
            and alternative.score <= label.score / 2)


def _utf8(data: bytes, declared: str | None) -> Decoded | None:
    """Valid UTF-8 is UTF-8, whatever the label; unless it is itself legacy text once
    read as Latin-1 and saved as UTF-8 (double encoding), which is read back."""
    text = _try(data, "utf-8")
    if text is None:
        return None
    repaired = _repair_latin1_mojibake(text)
    if repaired is not None:
        return Decoded(repaired.text, repaired.encoding, "repaired", declared)
    return Decoded(text, "utf-8", "utf-8", declared)


def decide(data: bytes, declared: str | None, hint: str | None = None) -> Decoded:
    """The one charset decision for non-ASCII bytes without a byte-order mark.

    The label (``declared``, else ``hint``: a weaker label such as the charset of the
    mail a raw header came in) wins when its reading is plausible; an alternative
    replaces it only when clearly more plausible (``_clearly_better``); without a
    usable label the most plausible alternative is taken (see ``normalizers.common.plausibility``).
    """
    found = _utf8(data, declared)
    if found is not None:
        return found
    codec = codec_name(declared) or codec_name(hint)
    label = _reading(data, codec)
    if label is not None and label.score <= PLAUSIBLE:
        return Decoded(label.text, label.encoding, "declared", declared)
    alternative = _best_alternative(data, codec)
    if alternative is not None and (label is None or _clearly_better(alternative, label)):
        return Decoded(alternative.text, alternative.encoding, "detected", declared)
    if label is not None:
        return Decoded(label.text, label.encoding, "declared", declared)
    return _fallback(data, declared)


def _fallback(data: bytes, declared: str | None) -> Decoded:
    """No table reads every byte: the one that reads most, with the rest dropped (a
    cut-off character at the end, a stray byte) rather than shown as U+FFFD."""
    best = ("gb18030", data.decode("gb18030", errors="replace"))
    for encoding in (codec_name(declared), "big5hkscs"):
        if encoding is None:
            continue
        with contextlib.suppress(LookupError):
            text = data.decode(encoding, errors="replace")
            if text.count("\ufffd") < best[1].count("\ufffd"):
                best = (encoding, text)
    return Decoded(best[1].replace("\ufffd", ""), best[0], "fallback", declared)


def _repair_latin1_mojibake(text: str) -> _Reading | None:
    """``text`` read back when it is legacy bytes once decoded as Latin-1 (or
    windows-1252) and kept as text: the bytes are recovered and decided again, and the
    new reading replaces ``text`` only when clearly more plausible. ``None`` otherwise."""
    if text.isascii() or any(ord(ch) > 0x2122 for ch in text):
        return None
    score = implausibility(text)
    if score <= PLAUSIBLE:
        return None
    for table in ("cp1252", "latin-1"):
        with contextlib.suppress(UnicodeEncodeError):
            data = text.encode(table)
            alternative = _best_alternative(data, "cp1252")
            current = _Reading(text, "utf-8", score)
            if alternative is not None and _clearly_better(alternative, current):
                return alternative
    return None


def decode(data: bytes, content_type: str | None = None) -> Decoded:
    """Decode ``data`` as the rules above say; ``content_type`` may carry a charset."""
    declared = charset_param(content_type) or declared_charset(data)
    bom = _bom(data)
    if bom is not None:
        return Decoded(bom[0], bom[1], "bom", declared)
    if data.isascii():
        return Decoded(data.decode("ascii"), "utf-8", "utf-8", declared)
    return decide(data, declared)


def decode_text(data: bytes, content_type: str | None = None) -> str:
    """Just the text of ``decode``."""
    return decode(data, content_type).text
