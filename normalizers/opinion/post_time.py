"""When a public post was published, from whatever a page or feed writes.

Sites write ``2020-7-19``, ``2020-8-2 13:11``, ``2019年11月20日 09:30``, ``8-1`` (this
year), ``16:09`` (today), ``3 小时前``, ``昨天 12:30``, RFC 822 or ISO 8601. The given
``strptime`` formats are tried first, then these shapes. Times without a zone are in the
centre's zone; ``now`` (the time the item was received) anchors relative and partial
times, so the result does not depend on when the parsing runs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime

_YMD = re.compile(
    r"(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:\s*T?\s*(?P<H>\d{1,2})\s*[:时點点]\s*(?P<M>\d{1,2})(?:\s*[:分]\s*(?P<S>\d{1,2}))?)?"
)
_MD = re.compile(
    r"^(?P<m>\d{1,2})\s*[-/月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:\s+(?P<H>\d{1,2})\s*:\s*(?P<M>\d{2}))?$"
)
_HM = re.compile(r"^(?:(?P<day>今天|昨天|前天)\s*)?(?P<H>\d{1,2})\s*:\s*(?P<M>\d{2})$")
_AGO = re.compile(r"^(?P<n>\d+)\s*(?P<unit>秒|分钟|分鐘|小时|小時|天|周|週|个月|個月)\s*前$")
_UNITS = {
    "秒": timedelta(seconds=1), "分钟": timedelta(minutes=1), "分鐘": timedelta(minutes=1),
    "小时": timedelta(hours=1), "小時": timedelta(hours=1), "天": timedelta(days=1),
    "周": timedelta(weeks=1), "週": timedelta(weeks=1), "个月": timedelta(days=30),
    "個月": timedelta(days=30),
}
_DAYS_BACK = {None: 0, "今天": 0, "昨天": 1, "前天": 2}
_JUST_NOW = {"刚刚", "剛剛", "just now"}


def _tidy(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def _aware(value: datetime, tz: tzinfo) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _with_format(text: str, fmt: str, tz: tzinfo, now: datetime) -> datetime | None:
    """``strptime``, completing a format without a year (this year) or date (today)."""
    local = now.astimezone(tz)
    yearless = "%Y" not in fmt and "%y" not in fmt
    if yearless:
        if "%m" not in fmt and "%d" not in fmt:
            text, fmt = f"{local:%Y-%m-%d} {text}", f"%Y-%m-%d {fmt}"
        else:
            text, fmt = f"{local.year} {text}", f"%Y {fmt}"
    try:
        value = _aware(datetime.strptime(text, fmt), tz)
    except ValueError:
        return None
    return _not_ahead(value, now) if yearless else value


def _not_ahead(value: datetime, now: datetime) -> datetime:
    """A year-less date that lands well after ``now`` was last year's."""
    if value > now + timedelta(days=2):
        try:
            return value.replace(year=value.year - 1)
        except ValueError:  # 29 February
            return value - timedelta(days=365)
    return value


def _shapes(text: str, tz: tzinfo, now: datetime) -> datetime | None:
    local = now.astimezone(tz)
    if text.lower() in _JUST_NOW:
        return now
    if m := _AGO.match(text):
        return now - int(m["n"]) * _UNITS[m["unit"]]
    if m := _HM.match(text):
        day = local.date() - timedelta(days=_DAYS_BACK[m["day"]])
        return _build(day.year, day.month, day.day, m["H"], m["M"], None, tz)
    if m := _MD.match(text):
        value = _build(local.year, int(m["m"]), int(m["d"]), m["H"], m["M"], None, tz)
        return _not_ahead(value, now) if value else None
    if m := _YMD.search(text):
        return _build(int(m["y"]), int(m["m"]), int(m["d"]), m["H"], m["M"], m["S"], tz)
    return None


def _build(year: int, month: int, day: int, hour: str | None, minute: str | None,
           second: str | None, tz: tzinfo) -> datetime | None:
    try:
        return datetime(year, month, day, int(hour or 0), int(minute or 0), int(second or 0),
                        tzinfo=tz)
    except ValueError:
        return None


def _standard(text: str, tz: tzinfo) -> datetime | None:
    try:
        return _aware(datetime.fromisoformat(text), tz)
    except ValueError:
        pass
    try:
        return _aware(parsedate_to_datetime(text), tz)
    except (TypeError, ValueError, IndexError):
        return None


def parse_post_time(text: str | None, formats: Sequence[str] = (), *, tz: tzinfo,
                    now: datetime) -> datetime | None:
    """The aware time ``text`` means, or ``None`` when it cannot be read."""
    if not text:
        return None
    text = _tidy(text)
    if not text:
        return None
    for fmt in formats:
        value = _with_format(text, fmt, tz, now)
        if value is not None:
            return value
    return _standard(text, tz) or _shapes(text, tz, now)
