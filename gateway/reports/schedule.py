"""The ``reports:`` block: an asyncio task of the gateway that builds last week's report
every Monday at ``at`` (local time), writes it into ``folder`` and then mails it to
``email_to``. Each step fails on its own: a mail that cannot be sent is logged and counted
(``Mailer.outcomes``, in /metrics) and never stops the files, and the other way round.
With several replicas, each writes the same files (the same figures, same names, atomic
renames): harmless. The mail goes out once: the replica that takes the week's lease in the
store sends it, the others skip it (a failed mail is not retried by another replica;
``minsheng report weekly --mail-to`` sends it again)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta

from gateway.reports.data import WeeklyReport
from gateway.reports.mail import mail_report
from gateway.reports.weekly import last_full_week, weekly_report, write_report
from gateway.store import Store, checkpoints
from gateway.support.config import GatewayConfig
from gateway.support.logging import get_logger
from gateway.support.mail import Mailer, MailError

log = get_logger("gateway.routing.reports")
MAIL_LEASE = "weekly-report-mail"
MAIL_LEASE_S = 6 * 86400.0  # held for the week's mail; expired before next Monday's


def next_run(now: datetime, config: GatewayConfig) -> datetime:
    """The next Monday at ``reports.at`` after ``now``, in the centre's time zone."""
    local = now.astimezone(config.tz)
    monday = local.date() - timedelta(days=local.weekday())
    run = datetime.combine(monday, config.reports.at, tzinfo=config.tz)
    return run if run > local else run + timedelta(weeks=1)


class WeeklyReports:
    def __init__(self, config: GatewayConfig, store: Store, mailer: Mailer | None = None) -> None:
        """``mailer``: the gateway's (it counts every mail it sends); by default one of
        this config's ``smtp`` block when the report is mailed."""
        self.config = config
        self.store = store
        if mailer is None and config.reports.email_to and config.smtp is not None:
            mailer = Mailer(config.smtp)
        self.mailer = mailer
        self._replica = uuid.uuid4().hex
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
        """Build last week's report, write it, mail it; a failure is logged, and the
        report is built again next Monday (``minsheng report weekly`` makes one now)."""
        now = datetime.now(self.config.tz)
        week = last_full_week(now, self.config.tz)
        try:
            report = await weekly_report(self.store, week, self.config.tz, now)
        except Exception as exc:  # the gateway keeps running; operations read the log
            log.error("weekly_report_failed", week=str(week), error=repr(exc))
            return
        await self._write(report)
        await self._mail(report)

    async def _write(self, report: WeeklyReport) -> None:
        settings = self.config.reports
        if settings.folder is None:
            return
        try:
            paths = await asyncio.to_thread(write_report, report, settings.folder,
                                            settings.formats)
        except Exception as exc:  # a full disk must not stop the mail
            log.error("weekly_report_failed", week=str(report.week), error=repr(exc))
            return
        log.info("weekly_report_written", week=str(report.week),
                 files=[str(p) for p in paths])

    async def _mail(self, report: WeeklyReport) -> None:
        settings = self.config.reports
        if self.mailer is None or not settings.email_to:
            return
        try:
            if not await self._claim_mail(report):
                log.info("weekly_report_mailed_elsewhere", week=str(report.week))
                return
            await mail_report(self.mailer, report, settings.email_to, settings.email_attach)
        except MailError:
            return  # logged (without addresses) and counted by the mailer
        except Exception as exc:  # a store or rendering failure must not end the Monday task
            log.error("weekly_report_mail_failed", week=str(report.week), error=repr(exc))
            return
        log.info("weekly_report_mailed", week=str(report.week),
                 recipients=len(settings.email_to))

    async def _claim_mail(self, report: WeeklyReport) -> bool:
        """Whether this replica sends the week's mail: the first to take the lease does."""
        owner = f"{report.week}:{self._replica}"
        return await self.store.write(
            lambda tx: checkpoints.acquire_lease(tx, MAIL_LEASE, owner, MAIL_LEASE_S))
