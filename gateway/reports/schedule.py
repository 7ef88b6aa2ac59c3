"""The ``reports:`` block: an asyncio task of the gateway that writes last week's report
every Monday at ``at`` (local time) into ``folder``. E-mail delivery needs the SMTP
support of another issue and is not built. With several replicas, each writes the same
files (the same figures, same names, atomic renames): harmless."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from gateway.reports.weekly import last_full_week, weekly_report, write_report
from gateway.store import Store
from gateway.support.config import GatewayConfig
from gateway.support.logging import get_logger

log = get_logger("gateway.routing.reports")


def next_run(now: datetime, config: GatewayConfig) -> datetime:
    """The next Monday at ``reports.at`` after ``now``, in the centre's time zone."""
    local = now.astimezone(config.tz)
    monday = local.date() - timedelta(days=local.weekday())
    run = datetime.combine(monday, config.reports.at, tzinfo=config.tz)
    return run if run > local else run + timedelta(weeks=1)


class WeeklyReports:
    def __init__(self, config: GatewayConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the Monday task is scheduled (asleep or writing)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="weekly-reports")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            now = datetime.now(self.config.tz)
            await asyncio.sleep((next_run(now, self.config) - now).total_seconds())
            await self.write_now()

    async def write_now(self) -> None:
        """Write last week's report; a failure is logged and retried next Monday."""
        settings = self.config.reports
        now = datetime.now(self.config.tz)
        week = last_full_week(now, self.config.tz)
        try:
            report = await weekly_report(self.store, week, self.config.tz, now)
            paths = await asyncio.to_thread(write_report, report, settings.folder,
                                            settings.formats)
        except Exception as exc:  # the gateway keeps running; operations read the log
            log.error("weekly_report_failed", week=str(week), error=repr(exc))
            return
        log.info("weekly_report_written", week=str(week), files=[str(p) for p in paths])
