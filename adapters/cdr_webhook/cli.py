"""``minsheng calls``: the hotline's KPIs and the answered calls still waiting for notes.

Registered in ``gateway/cli/__init__.py`` with ``main.add_command(calls)``. Self-contained (no
import of ``gateway.cli``), so that module can import this one at its top.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from adapters.cdr_webhook import call_store as store_calls
from adapters.cdr_webhook.flow import HotlineStats, hotline_stats
from gateway.cli.common import (
    config_option,
    json_option,
    load_or_exit,
    parse_since,
    read_logged,
    with_store,
)
from gateway.model.audit_action import AuditAction

T = TypeVar("T")
_source = click.option("--source", default=None, help="one phone source (default: all)")


@click.group("calls")
def calls() -> None:
    """Phone calls: hotline KPIs and calls waiting for their notes."""


@calls.command("stats")
@click.option("--since", default="24h", show_default=True,
              help="a span back from now (30m, 24h, 7d) or a local date/time (2024-05-01)")
@click.option("--until", default=None, help="end of the period (default: now)")
@click.option("--threshold", default=15, show_default=True, type=click.IntRange(1, 600),
              help="the service standard: seconds of ringing within which to answer")
@_source
@json_option
@config_option
def stats(since: str, until: str | None, threshold: int, source: str | None, as_json: bool,
          config_path: Path) -> None:
    """Calls offered, answered and abandoned; share answered within the threshold; ring
    time distribution; answered calls without notes."""
    config = load_or_exit(config_path)
    now = datetime.now(UTC)
    start = parse_since(since, config.tz, now)
    end = parse_since(until, config.tz, now) if until else now
    rows = with_store(config, lambda s: s.read(
        lambda tx: store_calls.kpi_rows(tx, start.timestamp(), end.timestamp(), source)))
    result = hotline_stats(rows, time.time(), threshold)
    if as_json:
        click.echo(json.dumps({"since": start.isoformat(), "until": end.isoformat(),
                               "source": source, **result.as_json()}, ensure_ascii=False,
                              indent=2))
        return
    local = config.tz
    click.echo(f"热线指标 Hotline KPIs  {start.astimezone(local):%Y-%m-%d %H:%M} → "
               f"{end.astimezone(local):%Y-%m-%d %H:%M} ({config.timezone})  "
               f"source: {source or 'all'}")
    for line in _stats_lines(result):
        click.echo(line)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _stats_lines(s: HotlineStats) -> list[str]:
    rings = "-" if s.ring_p50 is None else f"p50 {s.ring_p50}  p90 {s.ring_p90}  max {s.ring_max}"
    lines = [
        f"  呼入 offered                 {s.offered}",
        f"  接听 answered                {s.answered}  ({_share(s.answered_share)} of finished)",
        f"  放弃 abandoned               {s.abandoned}",
        f"  其他未接 other unanswered    {s.unanswered_other}",
        f"  进行中 in progress           {s.in_progress}",
        f"  {s.threshold_s} 秒内接听 answered within {s.threshold_s} s   {s.answered_within}  "
        f"服务水平 service level {_share(s.service_level)}"
        + (f"  (ring time unknown: {s.ring_unknown})" if s.ring_unknown else ""),
        f"  振铃时长 ring seconds        {rings}",
    ]
    widest = max((n for _, n in s.ring_histogram), default=0) or 1
    lines += [f"    {label:>7}  {'#' * round(20 * n / widest):<20} {n}"
              for label, n in s.ring_histogram]
    lines += [
        f"  已接听待补小记 answered without notes  {s.awaiting_notes}  "
        f"(超时 overdue {s.notes_overdue})",
        f"  回拨工单 callback cases      {s.callback_cases}",
        f"  呼出 outbound                {s.outbound}",
    ]
    return lines


@calls.command("overdue")
@_source
@json_option
@config_option
def overdue(source: str | None, as_json: bool, config_path: Path) -> None:
    """Calls past their deadline: answered without notes, or notes without a call record."""
    config = load_or_exit(config_path)
    now = time.time()
    found = read_logged(config, lambda tx: store_calls.waiting(tx, overdue_at=now, source=source),
                        AuditAction.CALLS_OVERDUE,
                        lambda f: (f"calls:{source or '*'}", {"count": len(f)}))
    if as_json:
        click.echo(json.dumps([_overdue_json(c, now) for c in found], ensure_ascii=False,
                              indent=2))
        return
    if not found:
        click.echo("没有超时未补小记的来电 (no overdue calls)")
    for call in found:
        row = _overdue_json(call, now)
        click.echo(f"{row['source']}\t{row['call_id']}\t{row['offered_at']}\t"
                   f"waiting for {row['waiting_for']}\t{row['overdue_min']} min overdue\t"
                   f"agent={row['agent'] or '-'}\tcaller={row['caller'] or '-'}")


def _overdue_json(call: store_calls.WaitingCall, now: float) -> dict[str, Any]:
    return {
        "source": call.source, "call_id": call.call_id, "caller": call.caller,
        "agent": call.agent, "status": call.status, "waiting_for": call.waiting_for,
        "offered_at": datetime.fromtimestamp(call.offered_at, UTC).isoformat(timespec="seconds"),
        "overdue_min": round((now - call.due_at) / 60, 1),
    }
