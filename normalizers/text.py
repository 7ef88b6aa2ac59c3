"""Shared text work: Unicode NFC, whitespace tidying, and limits on length."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"[ \t\u00a0\u3000\u2002-\u200a\u200b\ufeff]+")
_NEWLINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFC, unified newlines, runs of blanks folded (full-width and NBSP too), trimmed."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def clean_line(text: str) -> str:
    """Like ``clean_text`` but for one-line fields (names, subjects, addresses)."""
    return _SPACES.sub(" ", clean_text(text).replace("\n", " ")).strip()
