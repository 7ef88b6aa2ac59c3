"""``minsheng retention show | run``: what the daily purge takes next, and running it
once (docs/personal-data.md#retention, gateway/store/retention.py)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import click

from gateway.cli.common import config_option, echo_json, json_option, load_or_exit, with_store
from gateway.cli.status import table
from gateway.ops.retention_job import purge
from gateway.store import Store, retention
from gateway.store.retention import Due

LABELS = {
    "delivered_case": "delivered cases 已送达案件 (payload, attachments, personal fields)",
    "refused_raw": "rejected/filtered records 被拒/过滤的原始记录",
    "caseless_call": "calls without a case 未立案来电 (caller, joined fields, raw events)",
    "quarantine": "quarantine 隔离区 (never purged, 不自动删除)",
    "dead_letter": "dead letters 死信 (never purged, 不自动删除)",
}


@click.group("retention")
def retention_group() -> None:
    """Retention by purpose (按目的保存期限)."""


@retention_group.command("show")
@json_option
@config_option
def show(as_json: bool, config_path: Path) -> None:
    """Print what the next purge would take (counts per kind, oldest dates) and what is
    kept until someone acts (quarantine, dead letters), with its age."""
    config = load_or_exit(config_path)
    settings = config.retention
    now = time.time()

    async def work(store: Store) -> list[Due]:
        return await store.read(lambda tx: retention.due(
            tx, now - settings.delivered_s, now - settings.refused_s,
            settings.wait_for_accepted, now - settings.calls_s))

    found = with_store(config, work)
    if as_json:
        echo_json([{"kind": str(d.kind), "count": d.count, "oldest": _when(d.oldest, config.tz),
                    "age_days": _age(d.oldest, now)} for d in found])
        return
    click.echo(table(["kind 类别", "count 数量", "oldest 最早", "age 天数"],
                     [[LABELS[str(d.kind)], str(d.count), _when(d.oldest, config.tz) or "—",
                       "" if d.oldest is None else f"{_age(d.oldest, now)}"]
                      for d in found], set()))


def _when(at: float | None, tz: object) -> str | None:
    from zoneinfo import ZoneInfo

    assert isinstance(tz, ZoneInfo)
    return None if at is None else datetime.fromtimestamp(at, tz).isoformat(timespec="seconds")


def _age(at: float | None, now: float) -> float | None:
    return None if at is None else round((now - at) / 86400.0, 1)


@retention_group.command("run")
@config_option
def run(config_path: Path) -> None:
    """Run the purge once now (the gateway runs it daily at retention.run_at)."""
    config = load_or_exit(config_path)

    async def work(store: Store) -> dict[str, int]:
        return dict(await purge(store, config))

    echo_json(with_store(config, work))
