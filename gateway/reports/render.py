"""The weekly report as HTML (inline SVG charts, no external resources: it is mailed and
archived, and must open offline) and as Markdown."""

from __future__ import annotations

from datetime import timedelta
from html import escape
from importlib import resources
from string import Template

from gateway.reports.data import Compared, WeeklyReport, WeekRate

BAR_THIS, BAR_LAST = "#1f77b4", "#b0bec5"
OVERDUE_UNKNOWN = ("未接收办理状态，无法统计 Not available: the gateway does not receive case "
                   "statuses from the case platform yet.")


def _template() -> Template:
    text = resources.files("gateway.reports").joinpath("templates/weekly.html").read_text(
        encoding="utf-8")
    return Template(text)


def bar_chart(rows: list[Compared], width: int = 480) -> str:
    """Horizontal bars, this week over last week, per key."""
    rows = rows[:12]
    peak = max([1, *(max(r.this_week, r.last_week) for r in rows)])
    label_w, bar_h, gap = 130, 9, 8
    height = len(rows) * (2 * bar_h + gap) + 24
    scale = (width - label_w - 40) / peak
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" font-size="12">']
    for i, row in enumerate(rows):
        y = 4 + i * (2 * bar_h + gap)
        parts.append(f'<text x="0" y="{y + bar_h + 3}">{escape(row.key[:12])}</text>')
        for j, (n, colour) in enumerate(((row.this_week, BAR_THIS), (row.last_week, BAR_LAST))):
            top = y + j * bar_h
            parts.append(f'<rect x="{label_w}" y="{top}" width="{n * scale:.1f}" '
                         f'height="{bar_h - 1}" fill="{colour}"/>')
            parts.append(f'<text x="{label_w + n * scale + 4:.1f}" y="{top + bar_h - 1}" '
                         f'font-size="10">{n}</text>')
    legend_y = height - 6
    parts.append(f'<rect x="{label_w}" y="{legend_y - 9}" width="10" height="10" '
                 f'fill="{BAR_THIS}"/><text x="{label_w + 14}" y="{legend_y}">本周 this week'
                 f'</text><rect x="{label_w + 110}" y="{legend_y - 9}" width="10" height="10" '
                 f'fill="{BAR_LAST}"/><text x="{label_w + 124}" y="{legend_y}">上周 last week'
                 '</text></svg>')
    return "".join(parts)


def line_chart(trend: list[WeekRate], width: int = 720, height: int = 200) -> str:
    """The repeat rate per week as a line with its points labelled."""
    left, bottom, top = 40, 30, 16
    peak = max([0.05, *(w.rate for w in trend)])
    step = (width - left - 20) / max(1, len(trend) - 1)
    points = [(left + i * step, top + (height - top - bottom) * (1 - w.rate / peak))
              for i, w in enumerate(trend)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" font-size="11">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
             f'y2="{height - bottom}" stroke="#9aa5b1"/>',
             '<polyline fill="none" stroke="#c62828" stroke-width="2" points="'
             + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>']
    for (x, y), week in zip(points, trend, strict=True):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#c62828"/>'
                     f'<text x="{x:.1f}" y="{y - 6:.1f}" text-anchor="middle">'
                     f'{week.rate:.0%}</text><text x="{x:.1f}" y="{height - 12}" '
                     f'text-anchor="middle">{escape(week.week[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _delta(row: Compared) -> str:
    change = row.this_week - row.last_week
    css = "up" if change > 0 else "down" if change < 0 else ""
    return f'<td class="n {css}">{change:+d}</td>'


def compared_table(rows: list[Compared], heading: str) -> str:
    body = "".join(f"<tr><td>{escape(r.key)}</td><td class=n>{r.this_week}</td>"
                   f"<td class=n>{r.last_week}</td>{_delta(r)}</tr>" for r in rows)
    return (f"<table><tr><th>{heading}</th><th>本周 this week</th><th>上周 last week</th>"
            f"<th>变化 change</th></tr>{body}</table>")


def _hot_table(report: WeeklyReport) -> str:
    if not report.hot_topics:
        return "<p>本周无重复聚集的问题 No cluster grew this week.</p>"
    body = "".join(f"<tr><td>{escape(t.text)}</td><td class=n>{t.size}</td>"
                   f"<td class=n>{t.growth:+d}</td><td>{escape(t.cluster)}</td></tr>"
                   for t in report.hot_topics)
    return ("<table><tr><th>代表性诉求 Representative text</th><th>本周件数 cases</th>"
            f"<th>增长 growth</th><th>聚类 cluster</th></tr>{body}</table>")


def _overdue_section(report: WeeklyReport) -> str:
    if report.overdue is None:
        return f'<p class="note">{OVERDUE_UNKNOWN}</p>'
    if not report.overdue:
        return "<p>无 None.</p>"
    return "<ul>" + "".join(f"<li>{escape(c)}</li>" for c in report.overdue) + "</ul>"


def render_html(report: WeeklyReport) -> str:
    monday = report.week.monday()
    this_rate = report.repeat_trend[-1].rate if report.repeat_trend else 0.0
    return _template().substitute(
        week=escape(str(report.week)), range=f"{monday} – {monday + timedelta(days=6)}",
        generated=escape(report.generated_at.isoformat(timespec="minutes")),
        total=report.total.this_week, total_last=report.total.last_week,
        repeat_rate=f"{this_rate:.1%}",
        overdue_count="—" if report.overdue is None else len(report.overdue),
        channel_chart=bar_chart(report.by_channel),
        channel_table=compared_table(report.by_channel, "渠道 channel"),
        class_chart=bar_chart(report.by_class),
        class_table=compared_table(report.by_class, "分类 class"),
        district_table=compared_table(report.by_district, "区域 district"),
        hot_table=_hot_table(report), trend_chart=line_chart(report.repeat_trend),
        overdue_section=_overdue_section(report),
    )


def _md_table(rows: list[Compared], heading: str) -> list[str]:
    lines = [f"| {heading} | this week | last week | change |", "|---|---:|---:|---:|"]
    lines += [f"| {r.key} | {r.this_week} | {r.last_week} | {r.this_week - r.last_week:+d} |"
              for r in rows]
    return [*lines, ""]


def render_markdown(report: WeeklyReport) -> str:
    lines = [f"# 每周热点报告 Weekly hot-spot report {report.week}", "",
             f"Cases 受理: **{report.total.this_week}** (last week {report.total.last_week})", "",
             "## Intake by channel 受理渠道", "", *_md_table(report.by_channel, "channel"),
             "## Intake by class 分类", "", *_md_table(report.by_class, "class"),
             "## Intake by district 区域", "", *_md_table(report.by_district, "district"),
             "## Hot topics 热点问题", "", "| text | cases | growth |", "|---|---:|---:|"]
    lines += [f"| {t.text.replace('|', '/')} | {t.size} | {t.growth:+d} |"
              for t in report.hot_topics]
    lines += ["", "## Repeat rate 重复率", "", "| week | cases | repeats | rate |",
              "|---|---:|---:|---:|"]
    lines += [f"| {w.week} | {w.cases} | {w.repeats} | {w.rate:.1%} |"
              for w in report.repeat_trend]
    lines += ["", "## Past due without closed 逾期未办结", ""]
    if report.overdue is None:
        lines.append(OVERDUE_UNKNOWN)
    else:
        lines += [f"- {c}" for c in report.overdue] or ["None 无"]
    return "\n".join(lines) + "\n"
