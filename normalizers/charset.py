"""Bytes to text for pages, feeds and mails: trust the bytes, not the label.

Real pages declare ``gb2312`` in ``<meta>`` while being UTF-8, feeds declare one
encoding and use another, and legacy Chinese labels name too small a table. So:

1. a byte-order mark (or, in XML, the wide-encoding shape of ``<?xml``) decides;
2. bytes that are valid UTF-8 (and not plain ASCII) are UTF-8, whatever the label says;
3. otherwise the declared label (HTTP ``charset``, then ``<?xml encoding>`` or
   ``<meta charset>``) is tried, widened to its superset: GB2312/GBK → GB18030,
   Big5 → Big5-HKSCS, ISO-8859-1/ASCII → windows-1252. Almost any Big5 byte pair is
   also a valid GB18030 pair, so a Chinese legacy label is checked against the other
   one by charset-normalizer before it is believed;
4. otherwise charset-normalizer guesses;
5. as a last resort GB18030 with replacement characters (the most likely legacy
   encoding here), so text is never lost entirely.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

# Labels widened to the encoding that is a superset of what they name.
_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "ms936": "gb18030",
    "euc-cn": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030", "gb18030": "gb18030",
    "big5": "big5hkscs", "big5-hkscs": "big5hkscs", "cp950": "big5hkscs",
    "x-x-big5": "big5hkscs", "big5hkscs": "big5hkscs",
    "iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
    "us-ascii": "cp1252",
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
_CJK_LEGACY = ("gb18030", "big5hkscs")


@dataclass(frozen=True)
class Decoded:
    """Text and how it was read: ``how`` is bom, utf-8, declared, detected or fallback."""

    text: str
    encoding: str
    how: str
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


def _detected(data: bytes) -> tuple[str, str] | None:
    best = from_bytes(data[:65536]).best()
    if best is None:
        return None
    encoding = codec_name(best.encoding) or best.encoding
    text = _try(data, encoding)
    return (text, encoding) if text is not None else None


# Below this many non-ASCII bytes a statistical guess is weaker than the label: two or
# three Chinese characters decode validly in both GB18030 and Big5.
MIN_BYTES_TO_OVERRULE = 32


def _cjk_check(data: bytes, encoding: str) -> str:
    """``encoding`` (GB18030 or Big5-HKSCS), or the other one if the bytes say so: the
    label's codec fails on them, or there is enough text for detection to overrule it."""
    other = "big5hkscs" if encoding == "gb18030" else "gb18030"
    if _try(data, encoding) is None:
        return other if _try(data, other) is not None else encoding
    if sum(b > 0x7F for b in data[:4096]) < MIN_BYTES_TO_OVERRULE:
        return encoding
    best = from_bytes(data[:65536], cp_isolation=["gb18030", "big5hkscs"]).best()
    if best is not None and codec_name(best.encoding) == other and _try(data, other):
        return other
    return encoding


def decode(data: bytes, content_type: str | None = None) -> Decoded:
    """Decode ``data`` as the rules above say; ``content_type`` may carry a charset."""
    declared = charset_param(content_type) or declared_charset(data)
    bom = _bom(data)
    if bom is not None:
        return Decoded(bom[0], bom[1], "bom", declared)
    if data.isascii():
        return Decoded(data.decode("ascii"), "utf-8", "utf-8", declared)
    text = _try(data, "utf-8")
    if text is not None:
        return Decoded(text, "utf-8", "utf-8", declared)
    encoding = codec_name(declared)
    if encoding in _CJK_LEGACY:
        checked = _cjk_check(data, encoding)
        if checked != encoding:
            return Decoded(data.decode(checked), checked, "detected", declared)
    text = _try(data, encoding)
    if text is not None and encoding is not None:
        return Decoded(text, encoding, "declared", declared)
    detected = _detected(data)
    if detected is not None:
        return Decoded(detected[0], detected[1], "detected", declared)
    return Decoded(data.decode("gb18030", errors="replace"), "gb18030", "fallback", declared)


def decode_text(data: bytes, content_type: str | None = None) -> str:
    """Just the text of ``decode``."""
    return decode(data, content_type).text
