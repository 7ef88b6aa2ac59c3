"""The weekly report on both engines: figures from a store with nine weeks of cases
(written here), Markdown, the xlsx opened with openpyxl, the HTML rendered in chromium
(screenshot: docs/img/weekly-report.png; no request leaves the page), the command, the
Monday schedule, and the feedback export from the case statuses the platform sent back."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from playwright.async_api import Request, async_playwright

from gateway.cli import main
from gateway.model.case_status import parse_update
from gateway.reports.data import Week
from gateway.reports.schedule import WeeklyReports, next_run
from gateway.reports.weekly import render, weekly_report, write_report
from gateway.store import Store, Tx, cases, statuses
from gateway.support.config import parse_config
from tests.conftest import started_store
from tests.test_ops_page import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "img" / "weekly-report.png"
SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEK = Week(2026, 48)  # Monday 23 – Sunday 29 November 2026
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=SHANGHAI)


def doc(channel: str, subject: str, cls: str | None, district: str, kind: str = "new",
        cluster: str | None = None) -> dict[str, Any]:
    """The parts of a case document the report reads."""
    return {
        "channel": channel, "subject": subject, "body": f"{subject}，请尽快处理。",
        "location": {"district_code": district},
        "classification": {"code": "x", "path": [cls], "confidence": 0.9, "model": "m"}
        if cls else None,
        "dedup": {"kind": kind, "cluster_id": cluster},
        "due_at": "2026-11-26T09:30:00Z",
    }


def week_cases() -> list[tuple[int, dict[str, Any]]]:
    """(days before Monday of WEEK + 3, document): this week, last week, six before."""
    heating = "小区暖气不热，室温只有十四度"
    items = [(0, doc("phone", heating, "城乡建设", "370214", cluster="CL-heat"))]
    items += [(0, doc("phone", heating, "城乡建设", "370214", "repeat", "CL-heat"))] * 4
    items += [(0, doc("web", "共享单车乱停放", "交通运输", "370203", cluster="CL-bike"))] * 2
    items += [(0, doc("web", "学校乱收补课费，联系电话13800138000", "教育文体", "370203"))]
    items += [(0, doc("email", "工地夜间施工扰民", None, "370211"))]
    items += [(7, doc("phone", heating, "城乡建设", "370214", cluster="CL-heat"))]
    items += [(7, doc("web", "共享单车乱停放", "交通运输", "370203", cluster="CL-bike"))] * 3
    for back in range(2, 8):
        items += [(7 * back, doc("web", "路灯不亮", "城乡建设", "370203"))] * 2
        items += [(7 * back, doc("web", "路灯不亮", "城乡建设", "370203", "repeat", "CL-l"))]
    items += [(7 * 9, doc("web", "too old for the report", "城乡建设", "370203"))]
    return items


async def fill(store: Store) -> None:
    thursday = datetime.combine(WEEK.monday() + timedelta(days=3),
                                datetime.min.time(), tzinfo=SHANGHAI) + timedelta(hours=10)

    def write(tx: Tx) -> None:
        for n, (days_back, document) in enumerate(week_cases()):
            row = cases.insert(tx, case_code=f"CY-T-{n:04d}", source="t", source_ref=str(n),
                               channel=document["channel"], raw_id=n + 1,
                               document=json.dumps(document, ensure_ascii=False))
            created = (thursday - timedelta(days=days_back)).timestamp()
            tx.execute("UPDATE cases SET created_at = ? WHERE id = ?", (created, row.id))

    await store.write(write)


async def send_statuses(store: Store, updates: list[tuple[str, dict[str, str]]]) -> None:
    """Statuses as the case platform sends them back (the status API's store function)."""

    def write(tx: Tx) -> None:
        for code, body in updates:
            assert statuses.record_for_code(tx, code, parse_update(body), "api") is not None

    await store.write(write)


def closing(n: int, at: str = "2026-11-27T10:00:00+08:00") -> tuple[str, dict[str, str]]:
    return f"CY-T-{n:04d}", {"status": "closed", "at": at}


async def test_weekly_figures(store: Store) -> None:
    await fill(store)
    report = await weekly_report(store, WEEK, SHANGHAI, NOW)
    assert (report.total.this_week, report.total.last_week) == (9, 4)
    assert [(c.key, c.this_week, c.last_week) for c in report.by_channel] == [
        ("phone", 5, 1), ("web", 3, 3), ("email", 1, 0)]
    assert report.by_class[0].key == "城乡建设" and report.by_class[0].this_week == 5
    assert ("未知 unknown", 1, 0) in [(c.key, c.this_week, c.last_week) for c in report.by_class]
    heat = report.hot_topics[0]
    assert (heat.cluster, heat.size, heat.growth) == ("CL-heat", 5, 4)
    assert heat.text == "小区暖气不热，室温只有十四度"
    assert [t.cluster for t in report.hot_topics] == ["CL-heat"]  # CL-bike shrank: 3 → 2
    assert len(report.repeat_trend) == 8
    assert report.repeat_trend[-1].week == "2026-W48"
    assert (report.repeat_trend[-1].cases, report.repeat_trend[-1].repeats) == (9, 4)
    assert report.repeat_trend[0].week == "2026-W41" and report.repeat_trend[0].repeats == 1
    # Changed with the status API (issue 14): statuses come back now, so the overdue list
    # is known. Every case of the window is past its due_at (26 November); closed ones
    # drop out, a case reopened after closing is open again.
    reported = len(week_cases()) - 1  # the last case is older than the eight weeks
    updates = [closing(n) for n in range(reported) if n not in (0, 1, 5)]
    updates += [closing(1), ("CY-T-0001", {"status": "reopened",
                                           "at": "2026-11-28T10:00:00+08:00"})]
    await send_statuses(store, updates)
    report = await weekly_report(store, WEEK, SHANGHAI, NOW)
    assert report.overdue is not None
    assert sorted(report.overdue) == ["CY-T-0000", "CY-T-0001", "CY-T-0005"]


async def report_of(store_url: str) -> Any:
    async with started_store(store_url) as store:
        await fill(store)
        return await weekly_report(store, WEEK, SHANGHAI, NOW)


@pytest.fixture
async def filled_report(tmp_path: Path) -> Any:
    return await report_of(f"sqlite:///{tmp_path / 'r.db'}")


def test_markdown_and_xlsx(filled_report: Any) -> None:
    markdown = render(filled_report, "md").decode()
    assert markdown.startswith("# 每周热点报告 Weekly hot-spot report 2026-W48")
    assert "| phone | 5 | 1 | +4 |" in markdown
    assert "| 2026-W48 | 9 | 4 | 44.4% |" in markdown
    # Changed with the status API (issue 14): no case of the fixture is closed, so every
    # case past its due_at is listed instead of "not available".
    assert "Not available: the gateway does not receive case statuses" not in markdown
    assert "- CY-T-0000" in markdown
    assert "13800138000" not in markdown  # citizens' numbers are masked
    book = load_workbook(BytesIO(render(filled_report, "xlsx")))
    assert book.sheetnames == ["Summary", "Channels", "Classes", "Districts", "Hot topics",
                               "Repeat rate", "Overdue"]
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True)}
    assert summary["week 周"] == "2026-W48" and summary["cases 受理"] == 9
    channels = list(book["Channels"].iter_rows(values_only=True))
    assert channels[1] == ("phone", 5, 1, 4)
    trend = list(book["Repeat rate"].iter_rows(values_only=True))
    assert len(trend) == 9 and trend[-1] == ("2026-W48", 9, 4, 0.4444)
    assert len(book["Repeat rate"]._charts) == 1
    hot = list(book["Hot topics"].iter_rows(values_only=True))
    assert hot[1][:3] == ("小区暖气不热，室温只有十四度", 5, 4)


async def test_html_in_chromium(filled_report: Any, tmp_path: Path) -> None:
    page_file = tmp_path / "weekly.html"
    page_file.write_bytes(render(filled_report, "html"))
    requests: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1150, "height": 900})

            def seen(request: Request) -> None:
                requests.append(request.url)

            page.on("request", seen)
            await page.goto(page_file.as_uri())
            assert await page.locator("svg").count() == 3
            assert await page.locator("svg rect").count() >= 12
            assert "每周热点报告" in await page.locator("h1").inner_text()
            assert "44.4%" in await page.locator(".cards").inner_text()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            await browser.close()
    assert requests == [page_file.as_uri()]  # no external resource of any kind


def config_file(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "gateway.yaml"
    raw = {"store": {"url": f"sqlite:///{tmp_path / 'r.db'}"}, "data_dir": str(tmp_path),
           **extra}
    path.write_text(json.dumps(raw), encoding="utf-8")  # JSON is YAML
    return path


def test_report_command(tmp_path: Path) -> None:
    async def prepare() -> None:
        async with started_store(f"sqlite:///{tmp_path / 'r.db'}") as store:
            await fill(store)
            await send_statuses(store, [
                ("CY-T-0005", {"status": "accepted", "at": "2026-11-26T10:00:00+08:00",
                               "category": "交通运输"}),
                ("CY-T-0005", {"status": "closed", "at": "2026-11-27T10:00:00+08:00",
                               "category": "城乡建设"})])

    asyncio.run(prepare())
    config = config_file(tmp_path)
    runner = CliRunner()
    md = runner.invoke(main, ["report", "weekly", "--week", "2026-W48", "--format", "md",
                              "--config", str(config)])
    assert md.exit_code == 0, md.output
    assert "| phone | 5 | 1 | +4 |" in md.output
    out = tmp_path / "w.xlsx"
    xlsx = runner.invoke(main, ["report", "weekly", "--week", "2026-W48", "--format", "xlsx",
                                "--out", str(out), "--config", str(config)])
    assert xlsx.exit_code == 0 and load_workbook(out).sheetnames[0] == "Summary"
    bad = runner.invoke(main, ["report", "weekly", "--week", "2026-48", "--config",
                               str(config)])
    assert bad.exit_code == 2 and "2026-W48" in bad.output
    feedback = runner.invoke(main, ["classify", "export-feedback", "--out",
                                    str(tmp_path / "f.csv"), "--config", str(config)])
    # Changed with the status API (issue 14): real rows, the platform's latest category.
    assert feedback.exit_code == 0, feedback.output
    assert (tmp_path / "f.csv").read_text(encoding="utf-8").splitlines() == [
        "case_code,subject,body,label",
        "CY-T-0005,共享单车乱停放,共享单车乱停放，请尽快处理。,城乡建设"]
    assert "1 rows" in feedback.output


def test_next_monday_run() -> None:
    config = parse_config({"reports": {"enabled": True, "at": "08:00"}})
    monday_early = datetime(2026, 11, 30, 7, 0, tzinfo=SHANGHAI)
    assert next_run(monday_early, config) == datetime(2026, 11, 30, 8, 0, tzinfo=SHANGHAI)
    monday_late = datetime(2026, 11, 30, 8, 0, tzinfo=SHANGHAI)
    assert next_run(monday_late, config) == datetime(2026, 12, 7, 8, 0, tzinfo=SHANGHAI)
    thursday_utc = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert next_run(thursday_utc, config) == datetime(2026, 12, 7, 8, 0, tzinfo=SHANGHAI)


async def test_scheduled_report_writes_every_format(tmp_path: Path) -> None:
    config = parse_config({"store": {"url": f"sqlite:///{tmp_path / 'r.db'}"},
                           "reports": {"enabled": True, "folder": str(tmp_path / "out")}})
    async with started_store(config.store.url) as store:
        await WeeklyReports(config, store).write_now()
    last_week = Week.of(datetime.now(SHANGHAI).date() - timedelta(weeks=1))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"weekly-{last_week}.{fmt}" for fmt in ("html", "md", "xlsx")]


def test_write_report_replaces_whole_files(filled_report: Any, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    first = write_report(filled_report, folder, ["md"])
    again = write_report(filled_report, folder, ["md"])
    assert first == again and [p.name for p in folder.iterdir()] == ["weekly-2026-W48.md"]


async def test_gateway_runs_the_schedule_and_stops_it(tmp_path: Path) -> None:
    from gateway.server.app import Gateway
    from tests.conftest import gateway_config

    config = gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}",
                            reports={"enabled": True, "folder": str(tmp_path / "out")})
    gateway = Gateway(config)
    await gateway.start()
    try:
        reports = gateway.reports
        assert reports is not None and reports.running  # asleep until next Monday
    finally:
        await gateway.stop()
    assert not reports.running
