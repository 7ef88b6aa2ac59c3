"""The weekly report as an xlsx workbook (openpyxl): one sheet per table, a line chart of
the repeat rate, so the leadership's office can re-use the figures in its own papers."""

from __future__ import annotations

from io import BytesIO

from openpyxl import Workbook
from openpyxl.chart import LineChart, Reference
from openpyxl.worksheet.worksheet import Worksheet

from gateway.reports.data import Compared, WeeklyReport
from gateway.reports.render import OVERDUE_UNKNOWN

COMPARED_HEADER = ["this week 本周", "last week 上周", "change 变化"]


def _compared(sheet: Worksheet, key: str, rows: list[Compared]) -> None:
    sheet.append([key, *COMPARED_HEADER])
    for row in rows:
        sheet.append([row.key, row.this_week, row.last_week, row.this_week - row.last_week])


def render_xlsx(report: WeeklyReport) -> bytes:
    book = Workbook()
    summary = book.active
    assert summary is not None  # a new workbook has one sheet
    summary.title = "Summary"
    summary.append(["week 周", str(report.week)])
    summary.append(["cases 受理", report.total.this_week])
    summary.append(["cases last week 上周受理", report.total.last_week])
    summary.append(["repeat rate 重复率", report.repeat_trend[-1].rate])
    summary.append(["overdue 逾期未办结",
                    OVERDUE_UNKNOWN if report.overdue is None else len(report.overdue)])
    summary.append(["generated 生成", report.generated_at.isoformat(timespec="minutes")])
    for title, key, rows in (("Channels", "channel 渠道", report.by_channel),
                             ("Classes", "class 分类", report.by_class),
                             ("Districts", "district 区域", report.by_district)):
        _compared(book.create_sheet(title), key, rows)
    hot = book.create_sheet("Hot topics")
    hot.append(["text 代表性诉求", "cases 件数", "growth 增长", "cluster 聚类"])
    for topic in report.hot_topics:
        hot.append([topic.text, topic.size, topic.growth, topic.cluster])
    _trend(book.create_sheet("Repeat rate"), report)
    overdue = book.create_sheet("Overdue")
    overdue.append(["case code 案件编号"])
    for code in report.overdue or []:
        overdue.append([code])
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def _trend(sheet: Worksheet, report: WeeklyReport) -> None:
    sheet.append(["week 周", "cases 受理", "repeats 重复", "rate 重复率"])
    for week in report.repeat_trend:
        sheet.append([week.week, week.cases, week.repeats, round(week.rate, 4)])
    chart = LineChart()
    chart.title = "重复率 Repeat rate"
    rows = len(report.repeat_trend) + 1
    chart.add_data(Reference(sheet, min_col=4, min_row=1, max_row=rows), titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=rows))
    sheet.add_chart(chart, "F2")
