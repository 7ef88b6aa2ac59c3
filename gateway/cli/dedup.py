"""``minsheng clusters top`` and ``minsheng dedup explain``: what dedup found, and why.

Registered in ``gateway/cli/__init__.py`` with ``main.add_command(clusters)`` and
``main.add_command(dedup_group)``. Self-contained (no import of ``gateway.cli``), so
that module can import this one at its top.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from gateway.cli.common import (
    config_option,
    echo_json,
    json_option,
    load_or_exit,
    parse_since,
    with_store,
)
from gateway.model.schema import Complaint
from gateway.store import Tx, cases
from gateway.store import dedup_index as idx
from gateway.support.config import GatewayConfig
from gateway.support.logging import mask_text

T = TypeVar("T")
KIND_ZH = {"new": "新件", "repeat": "重复件", "related": "关联件"}


def _read(config: GatewayConfig, work: Callable[[Tx], T]) -> T:
    return with_store(config, lambda store: store.read(work))


def _local(epoch: float | None, tz: ZoneInfo) -> str:
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M")


# -- clusters --------------------------------------------------------------------------


@click.group("clusters")
def clusters() -> None:
    """Clusters of related complaints (关联件聚类) and hot topics."""


@clusters.command("top")
@click.option("--since", "since_text", default="24h", show_default=True,
              help="span (30m, 24h, 7d) or local date/time")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@json_option
@config_option
def clusters_top(since_text: str, limit: int, as_json: bool, config_path: Path) -> None:
    """The clusters that gained the most cases since --since (within the dedup window)."""
    config = load_or_exit(config_path)
    since = parse_since(since_text, config.tz, datetime.now(UTC))
    found = _read(config, lambda tx: idx.top_clusters(tx, since.timestamp(), limit))
    if as_json:
        echo_json([{**asdict(c), "snippet": mask_text(c.snippet)} for c in found])
        return
    if not found:
        click.echo(f"自 {since.astimezone(config.tz):%Y-%m-%d %H:%M} 以来没有关联件聚类 "
                   "(no clusters since then)")
        return
    click.echo("聚类 cluster\t新增 recent\t总数 size\t首件 first\t最新 latest\t热点 hot\t内容 text")
    for c in found:
        text = mask_text(" ".join(c.snippet.split()))[:40]
        click.echo(f"{c.cluster_id}\t{c.recent}\t{c.size}\t{c.first_code}\t{c.latest_code} "
                   f"({_local(c.latest_at, config.tz)})\t{c.hot_events}\t{text}")


# -- explain -----------------------------------------------------------------------------


@click.group("dedup")
def dedup_group() -> None:
    """Dedup decisions (查重): repeats, related cases, clusters."""


def _explanation(tx: Tx, case_code: str) -> dict[str, Any] | None:
    row = cases.get_by_code(tx, case_code)
    if row is None:
        return None
    decided = Complaint.model_validate_json(row.document).dedup
    link = idx.get_link(tx, row.id)
    cluster = idx.get_cluster(tx, decided.cluster_id) if decided.cluster_id else None
    return {
        "case_code": case_code,
        "decision": decided.model_dump(),
        "matched_case": link.matched_code if link else None,
        "similarity": link.similarity if link else decided.similarity,
        "shared_reporter_key": link.shared_key if link else None,
        "in_index": link is not None,
        "cluster": asdict(cluster) if cluster else None,
    }


def _lines(found: dict[str, Any], window_days: float, tz: ZoneInfo) -> list[str]:
    decided = found["decision"]
    kind = decided["kind"]
    lines = [f"{found['case_code']}: {KIND_ZH.get(kind, kind)} ({kind})"]
    if decided["repeat_of"]:
        lines.append(f"  重复于 repeat of:        {decided['repeat_of']}")
    if found["matched_case"]:
        lines.append(f"  匹配案件 matched case:   {found['matched_case']}")
    if found["similarity"] is not None:
        lines.append(f"  相似度 similarity:       {found['similarity']:.3f}")
    if found["shared_reporter_key"]:
        lines.append(f"  同一反映人 shared key:   {found['shared_reporter_key']}")
    cluster = found["cluster"]
    if cluster:
        role = "（首件 first case）" if cluster["first_code"] == found["case_code"] else ""
        lines.append(f"  聚类 cluster:            {cluster['cluster_id']}{role}, "
                     f"{cluster['size']} 件 cases, 最新 latest {cluster['latest_code']} "
                     f"({_local(cluster['latest_at'], tz)})")
    elif decided["cluster_id"]:
        lines.append(f"  聚类 cluster:            {decided['cluster_id']}")
    if kind == "new" and not decided["cluster_id"]:
        lines.append(f"  窗口内 ({window_days:g} 天) 无足够相似的案件 "
                     "(no similar enough case within the window)")
    if not found["in_index"]:
        lines.append("  索引条目已过期，以上为案件记录的决定 "
                     "(the index entry has aged out; shown: the decision recorded on the case)")
    return lines


@dedup_group.command("explain")
@click.argument("case_code")
@json_option
@config_option
def explain(case_code: str, as_json: bool, config_path: Path) -> None:
    """Why CASE_CODE was linked: matched case, similarity, shared reporter key."""
    config = load_or_exit(config_path)
    found = _read(config, lambda tx: _explanation(tx, case_code.strip().upper()))
    if found is None:
        click.echo(f"没有案件 {case_code} (no such case)", err=True)
        sys.exit(1)
    if as_json:
        echo_json(found)
        return
    for line in _lines(found, config.dedup.window_days, config.tz):
        click.echo(line)
