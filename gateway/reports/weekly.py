"""The weekly report: read the cases of the week and the seven before from the store,
build the figures, render them as HTML, xlsx or Markdown."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.reports.data import TREND_WEEKS, Week, WeeklyReport, build_report, read_facts
from gateway.reports.render import render_html, render_markdown
from gateway.reports.statuses import case_statuses
from gateway.store import Store
from gateway.support.routing_config import ReportFormat


def last_full_week(now: datetime, tz: ZoneInfo) -> Week:
    """The week before the one ``now`` is in: what a Monday report is about."""
    return Week.of(now.astimezone(tz).date() - timedelta(weeks=1))


async def weekly_report(store: Store, week: Week, tz: ZoneInfo, now: datetime) -> WeeklyReport:
    since, _ = week.shift(-(TREND_WEEKS - 1)).bounds(tz)
    _, until = week.bounds(tz)
    facts = await store.read(lambda tx: read_facts(tx, since, until, tz))
    statuses = case_statuses(store)
    closed = await statuses.closed(f.case_code for f in facts)
    return build_report(facts, week, closed, now)


def render(report: WeeklyReport, fmt: ReportFormat) -> bytes:
    if fmt == "xlsx":
        from gateway.reports.xlsx import render_xlsx  # openpyxl: ~0.2 s to import

        return render_xlsx(report)
    text = render_html(report) if fmt == "html" else render_markdown(report)
    return text.encode("utf-8")


def write_report(report: WeeklyReport, folder: Path, formats: list[ReportFormat]) -> list[Path]:
    """``weekly-2026-W48.html`` etc. in ``folder``, each written whole (temp file, rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = folder / f"weekly-{report.week}.{fmt}"
        partial = path.with_suffix(f".{fmt}.partial")
        partial.write_bytes(render(report, fmt))
        partial.replace(path)
        written.append(path)
    return written
