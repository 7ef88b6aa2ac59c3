"""Reading query-string values a caller sent, without an exception escaping.

``str.isdigit`` accepts ``²`` and ``١``, which ``int`` then refuses or reads; ``int``
refuses more than 4,300 digits. Every whole-number parameter of every route is read here:
ASCII digits only, a bounded length, a range.
"""

from __future__ import annotations

_MAX_DIGITS = 19  # 2**63 has 19 digits


def whole_number(text: str, low: int, high: int) -> int:
    """``text`` as a whole number from ``low`` to ``high``; ``ValueError`` otherwise."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS \
            or not low <= int(text) <= high:
        raise ValueError(f"须为 {low}..{high} 的整数 (must be a whole number from {low} to {high})")
    return int(text)
