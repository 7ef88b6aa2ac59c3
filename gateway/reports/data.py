"""The figures of the weekly report, from the cases of the store: intake by channel,
class and district against the week before, the clusters that grew most, the repeat rate
over eight weeks, and the cases past ``due_at`` without a ``closed`` status."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.store import Tx
from gateway.support.confidential import masked_text_of
from gateway.support.logging import mask_text

TREND_WEEKS = 8
HOT_TOPICS = 10
UNKNOWN = "未知 unknown"


@dataclass(frozen=True)
class Week:
    """An ISO week (Monday to Sunday) in the centre's time zone."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Week:
        """``2026-W48``."""
        year, sep, number = text.upper().partition("-W")
        if not sep or not year.isdigit() or not number.isdigit():
            raise ValueError(f"week must look like 2026-W48, not {text!r}")
        week = cls(int(year), int(number))
        week.monday()  # raises for W54 and the like
        return week

    @classmethod
    def of(cls, day: date) -> Week:
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def shift(self, weeks: int) -> Week:
        return Week.of(self.monday() + timedelta(weeks=weeks))

    def bounds(self, tz: ZoneInfo) -> tuple[float, float]:
        start = datetime.combine(self.monday(), datetime.min.time(), tzinfo=tz)
        return start.timestamp(), (start + timedelta(weeks=1)).timestamp()

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"


@dataclass(frozen=True)
class CaseFact:
    """What the report needs of one case."""

    case_code: str
    week: Week
    channel: str
    category: str
    district: str
    kind: str  # new | repeat | related
    cluster: str | None
    text: str
    due_at: datetime | None


def read_facts(tx: Tx, since: float, until: float, tz: ZoneInfo) -> list[CaseFact]:
    rows = tx.fetchall(
        "SELECT case_code, created_at, document FROM cases WHERE created_at >= ? "
        "AND created_at < ? ORDER BY created_at", (since, until))
    return [_fact(str(r[0]), float(r[1]), json.loads(r[2]), tz) for r in rows]


def _fact(code: str, created_at: float, doc: dict[str, Any], tz: ZoneInfo) -> CaseFact:
    dedup = doc.get("dedup") or {}
    classification = doc.get("classification") or {}
    location = doc.get("location") or {}
    due = doc.get("due_at")
    text = doc.get("subject") or (doc.get("body") or "")[:60]
    return CaseFact(
        case_code=code, week=Week.of(datetime.fromtimestamp(created_at, tz).date()),
        channel=doc.get("channel") or UNKNOWN,
        category=(classification.get("path") or [None])[0] or doc.get("category_hint")
        or UNKNOWN,
        district=location.get("district_code") or UNKNOWN, kind=dedup.get("kind") or "new",
        cluster=dedup.get("cluster_id") or dedup.get("repeat_of"),
        text=mask_text(masked_text_of(doc, text)),
        due_at=datetime.fromisoformat(due) if due else None,
    )


@dataclass(frozen=True)
class Compared:
    key: str
    this_week: int
    last_week: int


@dataclass(frozen=True)
class HotTopic:
    cluster: str
    size: int  # cases of the cluster this week
    growth: int  # against the week before
    text: str


@dataclass(frozen=True)
class WeekRate:
    week: str
    cases: int
    repeats: int

    @property
    def rate(self) -> float:
        return self.repeats / self.cases if self.cases else 0.0


@dataclass(frozen=True)
class WeeklyReport:
    week: Week
    generated_at: datetime
    total: Compared
    by_channel: list[Compared]
    by_class: list[Compared]
    by_district: list[Compared]
    hot_topics: list[HotTopic]
    repeat_trend: list[WeekRate]
    overdue: list[str] | None  # None: statuses are not received (issue 14)


def compare(facts: list[CaseFact], week: Week, attr: str) -> list[Compared]:
    this = Counter(getattr(f, attr) for f in facts if f.week == week)
    last = Counter(getattr(f, attr) for f in facts if f.week == week.shift(-1))
    keys = sorted(set(this) | set(last), key=lambda k: (-this[k], -last[k], k))
    return [Compared(k, this[k], last[k]) for k in keys]


def hot_topics(facts: list[CaseFact], week: Week) -> list[HotTopic]:
    """Clusters of two or more cases this week that grew, by how many more cases they got
    than the week before."""
    sizes: dict[Week, Counter[str]] = defaultdict(Counter)
    texts: dict[str, str] = {}
    for fact in facts:
        if fact.cluster is not None:
            sizes[fact.week][fact.cluster] += 1
            texts.setdefault(fact.cluster, fact.text)
    this, last = sizes[week], sizes[week.shift(-1)]
    topics = [HotTopic(c, n, n - last[c], texts[c]) for c, n in this.items()
              if n > 1 and n > last[c]]
    topics.sort(key=lambda t: (-t.growth, -t.size, t.cluster))
    return topics[:HOT_TOPICS]


def repeat_trend(facts: list[CaseFact], week: Week) -> list[WeekRate]:
    """重复率 (repeats ÷ cases) of the week and the seven before it, oldest first."""
    trend = []
    for back in range(TREND_WEEKS - 1, -1, -1):
        current = week.shift(-back)
        of_week = [f for f in facts if f.week == current]
        trend.append(WeekRate(str(current), len(of_week),
                              sum(1 for f in of_week if f.kind == "repeat")))
    return trend


def overdue(facts: list[CaseFact], closed: set[str] | None, now: datetime) -> list[str] | None:
    """Cases past ``due_at`` that are not closed; None when nobody knows what is closed."""
    if closed is None:
        return None
    return [f.case_code for f in facts
            if f.due_at is not None and f.due_at < now and f.case_code not in closed]


def build_report(facts: list[CaseFact], week: Week, closed: set[str] | None,
                 now: datetime) -> WeeklyReport:
    this = sum(1 for f in facts if f.week == week)
    last = sum(1 for f in facts if f.week == week.shift(-1))
    return WeeklyReport(
        week=week, generated_at=now, total=Compared("total", this, last),
        by_channel=compare(facts, week, "channel"), by_class=compare(facts, week, "category"),
        by_district=compare(facts, week, "district"), hot_topics=hot_topics(facts, week),
        repeat_trend=repeat_trend(facts, week), overdue=overdue(facts, closed, now),
    )
