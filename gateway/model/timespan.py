"""``--since`` / ``?since=`` values: a span back from now, or a date or time."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_SPAN = re.compile(r"^(\d{1,12})\s*([smhd])$", re.ASCII)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """``24h``/``7d``/``30m`` before ``now``, or a date or time (local unless zoned);
    ``ValueError`` saying what is accepted otherwise."""
    text = text.strip()
    span = _SPAN.match(text.lower())
    try:
        if span:
            return now - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        value = value if value.tzinfo else value.replace(tzinfo=tz)
        value.timestamp()  # year 1 in a zone east of UTC has none
    except OverflowError:
        raise ValueError(f"{text[:40]!r}: 超出可表示的时间范围 (out of the range of "
                         "representable times)") from None
    except ValueError:
        raise ValueError(
            f"{text[:40]!r}: 应为时长或时间 (a span such as 24h or 7d, or a date or time such as "
            "2024-05-01 or 2024-05-01T08:00)") from None
    return value
