"""The weekly report as a mail: the HTML report as the body (the Markdown one as its
plain-text part, for clients that show no HTML) and the chosen formats attached."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.reports.data import WeeklyReport
from gateway.reports.render import render_html, render_markdown
from gateway.reports.weekly import render
from gateway.support.mail import Attachment, Mailer, OutgoingMail, SentMail
from gateway.support.routing_config import ReportFormat

MIME_TYPES: dict[ReportFormat, str] = {
    "html": "text/html",
    "md": "text/markdown",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def report_subject(report: WeeklyReport) -> str:
    return f"民声网关周报 {report.week} Weekly report of the citizen hotline"


def report_mail(report: WeeklyReport, recipients: Sequence[str],
                attach: Sequence[ReportFormat]) -> OutgoingMail:
    """The mail of ``report`` to ``recipients`` (CPU work: run it off the event loop)."""
    return OutgoingMail(
        to=tuple(recipients),
        subject=report_subject(report),
        text=render_markdown(report),
        html=render_html(report),
        attachments=tuple(Attachment(f"weekly-{report.week}.{fmt}", render(report, fmt),
                                     MIME_TYPES[fmt]) for fmt in attach),
    )


async def mail_report(mailer: Mailer, report: WeeklyReport, recipients: Sequence[str],
                      attach: Sequence[ReportFormat]) -> SentMail:
    """Build and send the report's mail; ``MailError`` when it was not sent."""
    mail = await asyncio.to_thread(report_mail, report, recipients, attach)
    return await mailer.send(mail, "weekly_report")
