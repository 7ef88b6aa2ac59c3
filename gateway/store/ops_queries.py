"""Read-only queries behind the operations views: volumes per channel, rejections.

Windows (the last 24 hours, the last 7 days) are found by a binary search on the
primary key (``cases.created_at`` and ``raw_records.received_at`` grow with the id), so
no query reads more than its window, whatever the size of the tables. Counts are
grouped by hour in SQL; days and charts are made from the hours in Python.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.model.schema import CHANNELS
from gateway.store.engine import Tx

HOUR_S = 3600
# (table, time column): the tables whose rows are found by time through their ids.
_TIMED = {"cases": "created_at", "raw_records": "received_at"}


@dataclass(frozen=True)
class HourCount:
    hour: int  # the hour's start, epoch seconds (UTC)
    channel: str
    status: str  # the journal status, or "cases" for new cases
    count: int


@dataclass(frozen=True)
class RejectedRow:
    id: int
    source: str
    channel: str
    received_at: float
    detail: str | None


def _hour_expr(tx: Tx, column: str) -> str:
    if tx.dialect.name == "postgresql":
        return f"CAST(FLOOR({column} / {HOUR_S}) AS BIGINT)"
    return f"CAST({column} / {HOUR_S} AS INTEGER)"  # times are positive: CAST floors


def first_id_since(tx: Tx, table: str, since: float) -> int | None:
    """The smallest id whose time is at or after ``since`` (None: no such row)."""
    column = _TIMED[table]
    low_high = tx.fetchone(f"SELECT MIN(id), MAX(id) FROM {table}")
    if low_high is None or low_high[0] is None:
        return None
    low, high = int(low_high[0]), int(low_high[1])
    found: int | None = None
    while low <= high:
        mid = (low + high) // 2
        row = tx.fetchone(
            f"SELECT id, {column} FROM {table} WHERE id >= ? ORDER BY id LIMIT 1", (mid,)
        )
        if row is None:
            break
        if float(row[1]) >= since:
            found, high = int(row[0]), mid - 1
        else:
            low = int(row[0]) + 1
    return found


def hourly_cases(tx: Tx, since: float) -> list[HourCount]:
    """New cases per hour and channel from ``since`` on."""
    start = first_id_since(tx, "cases", since)
    if start is None:
        return []
    hour = _hour_expr(tx, "created_at")
    rows = tx.fetchall(
        f"SELECT {hour} AS h, channel, COUNT(*) FROM cases WHERE id >= ? AND created_at >= ? "
        "GROUP BY h, channel",
        (start, since),
    )
    return [HourCount(int(r[0]) * HOUR_S, r[1], "cases", int(r[2])) for r in rows]


def hourly_journal(tx: Tx, since: float) -> list[HourCount]:
    """Raw records per hour, channel and outcome (journal status) from ``since`` on."""
    start = first_id_since(tx, "raw_records", since)
    if start is None:
        return []
    hour = _hour_expr(tx, "received_at")
    rows = tx.fetchall(
        f"SELECT {hour} AS h, channel, status, COUNT(*) FROM raw_records "
        "WHERE id >= ? AND received_at >= ? GROUP BY h, channel, status",
        (start, since),
    )
    return [HourCount(int(r[0]) * HOUR_S, r[1], r[2], int(r[3])) for r in rows]


def rejected_after(tx: Tx, after_id: int, limit: int = 5000) -> list[RejectedRow]:
    """Rejected journal records with an id above ``after_id``, oldest first."""
    rows = tx.fetchall(
        "SELECT id, source, channel, received_at, detail FROM raw_records "
        "WHERE status = 'rejected' AND id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [RejectedRow(int(r[0]), r[1], r[2], float(r[3]), r[4]) for r in rows]


class VolumeCache:
    """Hourly counts per channel over the window, kept between refreshes.

    Past hours do not change, so a refresh reads only the current hour and the one
    before it (records committed late); the first refresh reads the whole window.
    Counts: ``cases`` (new cases), ``received`` (every journaled record) and each
    journal status (``accepted``, ``rejected``, ``replay``, …).
    """

    def __init__(self, days: int, tz: ZoneInfo) -> None:
        self.days = days
        self.tz = tz
        self.hours: dict[tuple[int, str, str], int] = {}
        self.read_until: int | None = None  # hours before this one are complete

    def window_start(self, now: float) -> int:
        today = datetime.fromtimestamp(now, self.tz).date()
        first = datetime.combine(today - timedelta(days=self.days - 1), dtime(), self.tz)
        return int(first.timestamp()) // HOUR_S * HOUR_S

    def refresh(self, tx: Tx, now: float) -> None:
        start = self.window_start(now)
        since = start if self.read_until is None else max(start, self.read_until - HOUR_S)
        self.hours = {k: v for k, v in self.hours.items() if start <= k[0] < since}
        for row in [*hourly_cases(tx, since), *hourly_journal(tx, since)]:
            self.hours[(row.hour, row.channel, row.status)] = row.count
        self.read_until = int(now) // HOUR_S * HOUR_S

    def view(self, now: float) -> dict[str, Any]:
        """Cases per channel for each of the last 24 hours and each day of the window,
        and the totals per channel (cases, received, rejected) of both periods."""
        current = int(now) // HOUR_S * HOUR_S
        hours = [current - i * HOUR_S for i in range(23, -1, -1)]
        today = datetime.fromtimestamp(now, self.tz).date()
        days = [today - timedelta(days=i) for i in range(self.days - 1, -1, -1)]
        by_hour: dict[int, Counter[str]] = {h: Counter() for h in hours}
        by_day: dict[date, Counter[str]] = {d: Counter() for d in days}
        last_24h: dict[str, Counter[str]] = {}
        window: dict[str, Counter[str]] = {}
        for (hour, channel, status), n in self.hours.items():
            kinds = ("cases",) if status == "cases" else ("received", status)
            recent = hour >= hours[0]
            for kind in kinds:
                window.setdefault(channel, Counter())[kind] += n
                if recent:
                    last_24h.setdefault(channel, Counter())[kind] += n
            if status == "cases":
                if recent:
                    by_hour[hour][channel] += n
                day = datetime.fromtimestamp(hour, self.tz).date()
                if day in by_day:
                    by_day[day][channel] += n
        return {
            "channels": ordered_channels({*window, *CHANNELS}),
            "hours": [{"start": h, "cases": dict(by_hour[h])} for h in hours],
            "days": [{"date": d.isoformat(), "cases": dict(by_day[d])} for d in days],
            "last_24h": {c: _totals(n) for c, n in last_24h.items()},
            "window": {c: _totals(n) for c, n in window.items()},
            "window_days": self.days,
        }


def ordered_channels(channels: set[str]) -> list[str]:
    known = [c for c in CHANNELS if c in channels]
    return known + sorted(channels - set(CHANNELS))


def _totals(counts: Counter[str]) -> dict[str, int]:
    return {"cases": counts["cases"], "received": counts["received"],
            "rejected": counts["rejected"]}
