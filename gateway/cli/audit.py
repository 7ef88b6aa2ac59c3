"""``minsheng audit list``: the access log (gateway/store/audit.py). Commands that show
cases or queues record themselves there with ``gateway.cli.common.read_logged``; their
actor is ``os:<user>``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.cli.common import (
    config_option,
    echo_json,
    json_option,
    load_or_exit,
    parse_since,
    with_store,
)
from gateway.store import audit
from gateway.store.audit import AuditAction


@click.group("audit")
def audit_group() -> None:
    """The access log: who read which case (访问日志)."""


@audit_group.command("list")
@click.option("--since", default="7d", show_default=True,
              help="a span back from now (30m, 24h, 7d) or a local date/time (2024-05-01)")
@click.option("--actor", default=None, help="one actor: api, ops, public or os:<user>")
@click.option("--action", default=None, type=click.Choice([a.value for a in AuditAction]),
              help="one kind of read")
@json_option
@config_option
def audit_list(since: str, actor: str | None, action: str | None, as_json: bool,
               config_path: Path) -> None:
    """List access log entries, oldest first (at most 10 000; narrow with --since)."""
    config = load_or_exit(config_path)
    start = parse_since(since, config.tz, datetime.now(config.tz)).timestamp()
    found = with_store(config, lambda s: s.read(
        lambda tx: audit.entries(tx, start, actor, action)))
    if as_json:
        echo_json([e.as_json() for e in found])
        return
    if not found:
        click.echo("没有访问记录 (no access log entries)")
    for e in found:
        when = datetime.fromtimestamp(e.at, UTC).astimezone(config.tz)
        detail = " ".join(f"{k}={v}" for k, v in sorted(e.detail.items()))
        click.echo(f"{when.isoformat(timespec='seconds')}\t{e.actor}\t{e.action}\t"
                   f"{e.target}\t{detail}")
    if len(found) >= audit.LIST_LIMIT:
        click.echo(f"(first {audit.LIST_LIMIT} entries only: narrow with --since)", err=True)
