"""Due dates in working days, counted with mainland China's public holidays and adjusted
working weekends (调休) from ``chinesecalendar``.

The library knows the years the State Council has published; past them a day is a
working day when it is Monday to Friday, and a warning is logged once per process.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

from gateway.support.logging import get_logger

log = get_logger("gateway.routing.deadlines")


class WorkCalendar:
    """Which days are working days; remembers whether it has warned about unknown years.

    Every answer is kept: the library validates and scans its tables on each call (about
    0.4 ms per due date measured at intake), while a centre only ever asks about the few
    hundred days around now, and a day's status never changes within a process."""

    def __init__(self) -> None:
        self.warned_years: set[int] = set()
        self._known: dict[date, bool] = {}

    def is_working_day(self, day: date) -> bool:
        known = self._known.get(day)
        if known is None:
            known = self._known[day] = self._ask(day)
        return known

    def _ask(self, day: date) -> bool:
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:  # a year the library does not know yet
            if not self.warned_years:  # once: every later day is past the range too
                log.warning("holiday_calendar_unknown_year", year=day.year,
                            fallback="monday_to_friday")
            self.warned_years.add(day.year)
            return day.weekday() < 5

    def next_working_day(self, day: date) -> date:
        """The first working day after ``day``."""
        day += timedelta(days=1)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day


CALENDAR = WorkCalendar()


def due_at(received_at: datetime, working_days: int, tz: ZoneInfo, end_of_day: time,
           calendar: WorkCalendar = CALENDAR) -> datetime:
    """The end of the ``working_days``-th working day after the day the matter counts
    from: the day of submission, or the next working day when it came on a day off or
    after ``end_of_day``. With 0 working days it is due at the end of that day."""
    local = received_at.astimezone(tz)
    return _due(local.date(), local.time() > end_of_day, working_days, tz, end_of_day,
                calendar)


@lru_cache(maxsize=256)
def _due(day: date, late: bool, working_days: int, tz: ZoneInfo, end_of_day: time,
         calendar: WorkCalendar) -> datetime:
    """``due_at`` of a matter received on the local ``day``, ``late`` when after
    ``end_of_day``. Kept: every submission of one local day and one service level has
    the same due date (counting working days is ~8 µs of each submission's CPU, the
    look-up ~1 µs), and a day's status never changes within a process (``WorkCalendar``).
    The cache holds the last few days × service levels; its key holds the calendar, so a
    test's own calendar counts apart."""
    start = day
    if not calendar.is_working_day(start) or late:
        start = calendar.next_working_day(start)
    for _ in range(working_days):
        start = calendar.next_working_day(start)
    return datetime.combine(start, end_of_day, tzinfo=tz)
