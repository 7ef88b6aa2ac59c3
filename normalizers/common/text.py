"""Shared text work: Unicode NFC, whitespace tidying, and limits on length."""

from __future__ import annotations

import re
import unicodedata

# Blanks folded to one space: ASCII, tab, NBSP (\xa0), ideographic space (\u3000), the
# typographic spaces of U+2000..U+200A, narrow NBSP, medium math space, Ogham space.
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
# Line breaks other than \n: CR LF, CR, VT, FF, NEL, line and paragraph separators.
_LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
# Deleted outright: other control characters, soft hyphen, zero-width space and joiner
# word, byte-order mark. (Zero-width joiners inside emoji are kept.)
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u200b\u2060\ufeff]")
_NEWLINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFC, unified newlines, runs of blanks folded (full-width and NBSP too), trimmed."""
    text = unicodedata.normalize("NFC", text)
    if text.isprintable() and "  " not in text:
        # The usual field: one line, no control, format or separator character but the
        # ASCII space (``isprintable`` is false for every other one, line breaks, tabs
        # and everything _INVISIBLE deletes included), no run of spaces: only the trim
        # is left to do.
        return text.strip()
    text = _INVISIBLE.sub("", _LINE_BREAKS.sub("\n", text))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def clean_line(text: str) -> str:
    """Like ``clean_text`` but for one-line fields (names, subjects, addresses)."""
    text = clean_text(text)
    if "\n" not in text:  # clean_text folded and trimmed it already
        return text
    return _SPACES.sub(" ", text.replace("\n", " ")).strip()


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
