"""``--since`` / ``?since=`` values: a span back from now, or a date or time."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_SPAN = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """``24h``/``7d``/``30m`` before ``now``, or a date or time (local unless zoned);
    ``ValueError`` saying what is accepted otherwise."""
    text = text.strip()
    span = _SPAN.match(text.lower())
    if span:
        return now - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r}: 应为时长或时间 (a span such as 24h or 7d, or a date or time such as "
            "2024-05-01 or 2024-05-01T08:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=tz)
