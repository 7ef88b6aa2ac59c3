"""Reading mail headers as Chinese mail really has them (see ``normalizers.email``).

Values are taken raw from the parsed message (``raw_items``) and decoded here: RFC 2047
encoded words read as mail clients read them (adjacent words of one table joined, spaces
inside, no separators, cut-off words), raw 8-bit bytes, ISO-2022 escapes, every piece
through the one charset decision (``normalizers.common.charset.decide``); MIME parameters with
RFC 2231 and RFC 2047 values; addresses; the source reference (Message-ID, else a hash
of stable headers). Nothing here raises for bad input.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses
from urllib.parse import unquote_to_bytes

from normalizers.common.charset import codec_name, decide
from normalizers.common.text import clean_line

# Hashed into the source reference of a mail without a Message-ID.
STABLE_HEADERS = ("from", "sender", "reply-to", "to", "cc", "date", "subject", "in-reply-to")
_LATIN = {"cp1252", "iso8859-1", "latin-1", "ascii", "iso8859-15", "cp437"}
# An encoded word, read as mail clients read it rather than as RFC 2047 allows: spaces
# inside the encoded text (``=?UTF-8?Q? Personal=C3=A4nderung?=``), no space before or
# after it, and one cut off at the end of the value (no "?=").
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?]*)(?:\?=|$)")
_SPACE = re.compile(r"\s+")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ADDRESS = re.compile(r"^[^@\s<>]{1,64}@[^@\s<>]+\.[^@\s<>]{2,}$")
_ADDRESS_IN_TEXT = re.compile(r"[\w.+-]{1,64}@[\w-]+(?:\.[\w-]+)+")
_MSGID = re.compile(r"<([^<>\s]{1,250})>")


def unfold(value: str) -> str:
    """A header value on one line (folding line breaks removed)."""
    return _FOLD.sub("", value)


def parse_message(data: bytes, headers_only: bool = False) -> Message:
    """Parse mail bytes (``policy.default``); never raises for malformed input."""
    parser = BytesParser(policy=policy.default)
    return parser.parsebytes(data, headersonly=headers_only)


def decode_bytes(data: bytes, label: str | None = None, hint: str | None = None) -> str:
    """Text of mail bytes labelled ``label`` (maybe wrongly). Unlabelled bytes (raw 8-bit
    header bytes) and bytes with an unknown label (``unknown-8bit``) are read with
    ``hint``, the charset of the mail's text, as a weaker label. 7-bit bytes are ASCII
    unless ISO-2022/UTF-7; 8-bit bytes go through the one charset decision of
    ``normalizers.common.charset.decide`` (the label wins when its reading is plausible)."""
    codec = codec_name(label)
    if data.isascii():
        return _seven_bit(data, codec or codec_name(hint))
    return decide(data, label if codec is not None else None, hint).text


def _seven_bit(data: bytes, codec: str | None) -> str:
    """7-bit bytes: ASCII, unless they are ISO-2022 or UTF-7 text (labelled or not)."""
    candidates = [codec] if codec is not None and codec not in _LATIN else []
    if b"\x1b" in data:
        candidates.append("iso2022_jp_2")
    for candidate in candidates:
        with contextlib.suppress(UnicodeDecodeError, LookupError):
            return data.decode(candidate)
    return data.decode("ascii")


def _unescape_8bit(value: str, hint: str | None) -> str:
    """Raw 8-bit header bytes arrive surrogate-escaped from the parser: decode them (and
    raw ISO-2022 escape sequences)."""
    if "\x1b" not in value and not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("utf-8", "surrogateescape"), None, hint)


def _word_bytes(encoding: str, text: str) -> bytes:
    if encoding in "Bb":
        text = _SPACE.sub("", text).rstrip("=")
        for cut in (0, 1):  # a stray extra character: drop it rather than the word
            candidate = text[: len(text) - cut] if cut else text
            with contextlib.suppress(binascii.Error, ValueError):
                return base64.b64decode(candidate + "=" * (-len(candidate) % 4))
        return text.encode("ascii", "replace")
    return binascii.a2b_qp(text.encode("utf-8", "surrogateescape"), header=True)


@dataclass
class _Words:
    """A header value being decoded: adjacent encoded words of one table are joined
    before decoding (clients split a character, even a base64 quantum, across words)."""

    hint: str | None
    pieces: list[str] = field(default_factory=list)
    charset: str | None = None
    data: bytearray = field(default_factory=bytearray)
    cut: str = ""  # base64 text whose quantum goes on in the next word

    def joins(self, charset: str, between: str) -> bool:
        return bool(self.data or self.cut) and not between.strip() and charset == self.charset

    def add(self, charset: str, encoding: str, text: str) -> None:
        self.charset = charset
        if encoding in "Bb":
            text = self.cut + _SPACE.sub("", text)
            self.cut = "" if len(text) % 4 == 0 or text.endswith("=") else text
            if self.cut:
                return
        self.data.extend(_word_bytes(encoding, text))

    def flush(self) -> None:
        if self.cut:
            self.data.extend(_word_bytes("B", self.cut))
            self.cut = ""
        if self.data:
            self.pieces.append(decode_bytes(bytes(self.data), self.charset, self.hint))
            self.data.clear()
        self.charset = None


def decode_words(value: str, hint: str | None = None) -> str:
    """Decode a header value: unfolded, raw 8-bit bytes and RFC 2047 encoded words."""
    value = _unescape_8bit(_FOLD.sub("", value), hint)
    words = _Words(hint)
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position:match.start()]
        label = match.group(1).split("*", 1)[0].lower()  # "gb2312*zh": RFC 2231 language
        charset = codec_name(label) or label  # "gbk" and "GB2312" join: one table
        if not words.joins(charset, between):
            words.flush()
            words.pieces.append(between)
        words.add(charset, match.group(2), match.group(3))
        position = match.end()
    words.flush()
    words.pieces.append(value[position:])
    return "".join(words.pieces)


def raw_header(msg: Message, name: str) -> str | None:
    """The first raw value of header ``name`` (as received), or ``None``."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return str(value)
    return None


def raw_headers(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == wanted]


def header_text(msg: Message, name: str, hint: str | None = None) -> str:
    """The decoded, one-line text of header ``name`` ("" when missing)."""
    value = raw_header(msg, name)
    return clean_line(decode_words(value, hint)) if value is not None else ""


def addresses(msg: Message, name: str, hint: str | None = None) -> list[tuple[str, str]]:
    """``(display name, address)`` pairs of an address header, names decoded."""
    value = raw_header(msg, name)
    if value is None:
        return []
    text = _unescape_8bit(_FOLD.sub("", value), hint)
    found = []
    with contextlib.suppress(ValueError, IndexError, TypeError):
        for display, address in getaddresses([text]):
            address = address.strip()
            if _ADDRESS.match(address):
                found.append((clean_line(decode_words(display, hint)), address))
    if not found:
        match = _ADDRESS_IN_TEXT.search(text)
        if match:
            found.append(("", match.group(0)))
    return found


def address_of(msg: Message, name: str, hint: str | None = None) -> str | None:
    """The first address of header ``name``, lower-cased."""
    found = addresses(msg, name, hint)
    return found[0][1].lower() if found else None


def message_ref(msg: Message) -> str:
    """``<id@host>`` from the Message-ID, else ``sha256:`` of the stable headers."""
    value = raw_header(msg, "message-id")
    if value is not None:
        unfolded = _FOLD.sub("", value).strip()
        match = _MSGID.search(unfolded)
        if match:
            return f"<{match.group(1)}>"
        if unfolded and " " not in unfolded and len(unfolded) <= 250 and unfolded.isascii():
            return f"<{unfolded.strip('<>')}>"
    digest = hashlib.sha256()
    for name in STABLE_HEADERS:
        for item in raw_headers(msg, name):
            digest.update(f"{name}:{_FOLD.sub('', item).strip()}\n".encode(
                "utf-8", "surrogateescape"))
    return f"sha256:{digest.hexdigest()}"


# -- MIME structure --------------------------------------------------------------------------


def mime_params(value: str | None, hint: str | None = None) -> tuple[str, dict[str, str]]:
    """``("text/plain", {"charset": "gbk"})`` from a raw Content-Type or -Disposition,
    with RFC 2231 (``name*0*=utf-8''…``) and RFC 2047 (``name="=?gbk?B?…?="``) values."""
    if not value:
        return "", {}
    tokens = _split_params(_FOLD.sub("", value))
    main = tokens[0].strip().lower() if tokens else ""
    plain: dict[str, str] = {}
    extended: dict[str, list[tuple[int, bool, str]]] = {}
    for token in tokens[1:]:
        key, sep, raw = token.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            continue
        raw = _unquote(raw.strip())
        m = re.fullmatch(r"([^*]+)\*(?:(\d+)\*?|)", key)
        if key.endswith("*") or (m and m.group(2) is not None):
            base = m.group(1) if m else key.rstrip("*")
            index = int(m.group(2)) if m and m.group(2) else 0
            extended.setdefault(base, []).append((index, key.endswith("*"), raw))
        else:
            plain[key] = decode_words(raw, hint)
    for base, parts in extended.items():
        plain[base] = _rfc2231(sorted(parts), hint)
    return main, plain


def _split_params(value: str) -> list[str]:
    tokens, current, quoted, escaped = [], [], False, False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch == ";" and not quoted:
            tokens.append("".join(current))
            current = []
        else:
            current.append(ch)
    tokens.append("".join(current))
    return tokens


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _rfc2231(parts: list[tuple[int, bool, str]], hint: str | None) -> str:
    charset: str | None = None
    data = bytearray()
    for position, (_, encoded, raw) in enumerate(parts):
        if encoded:
            if position == 0 and raw.count("'") >= 2:
                charset, _, raw = raw.split("'", 2)
            data.extend(unquote_to_bytes(raw))
        else:
            data.extend(raw.encode("utf-8", "surrogateescape"))
    return decode_words(decode_bytes(bytes(data), charset or None, hint), hint)
