"""``minsheng status``: sources, sinks, backlog, dead letters and quarantine in a table.

It asks the running gateway (``GET /v1/status``, with ``ops.token`` from the config) and,
when no gateway answers, reads the store itself: then the figures of the store are
shown and the sources' states are unknown. Exit status: 0 when all is well, 1 when
something needs attention, 2 for a bad config.
"""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import httpx

from gateway.cli.common import config_option, json_option, load_or_exit, with_store
from gateway.store import Store
from gateway.store.ops_queries import VolumeCache
from gateway.support.config import GatewayConfig

STATE_LABELS = {"up": "正常 up", "degraded": "降级 degraded", "down": "中断 down",
                "standby": "待命 standby", "disabled": "停用 disabled",
                "starting": "启动中 starting", "unknown": "未知 unknown"}
OVERALL = {"ok": "全部正常 all normal", "warning": "需要关注 attention",
           "critical": "严重故障 critical"}
CHANNELS = {"phone": "电话 phone", "web": "网上信箱 web", "email": "电子邮件 e-mail",
            "opinion": "网络舆情 opinion"}


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int]) -> str:
    """Columns aligned for the terminal, counting a CJK character as two cells."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - _width(cell))
            parts.append(pad + cell if i in right else cell + pad)
        return "  ".join(parts).rstrip()

    rule = "  ".join("─" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def ago(ts: float | None, now: float) -> str:
    if not ts:
        return "—"
    return duration(now - ts)


def duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _base_url(config: GatewayConfig) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.server.host, config.server.host)
    return f"http://[{host}]:{config.server.port}" if ":" in host else \
        f"http://{host}:{config.server.port}"


def fetch_live(config: GatewayConfig, url: str) -> tuple[dict[str, Any] | None, str]:
    """The running gateway's ``/v1/status``, or None and why not."""
    headers = {}
    if config.ops.token is not None:
        headers["Authorization"] = f"Bearer {config.ops.token.get_secret_value()}"
    try:
        response = httpx.get(f"{url}/v1/status", headers=headers, timeout=3.0)
    except httpx.HTTPError as exc:
        return None, f"网关未响应 gateway not reachable at {url} ({type(exc).__name__})"
    if response.status_code != 200:
        return None, f"网关拒绝 gateway answered {response.status_code} at {url}/v1/status"
    return response.json(), f"来自运行中的网关 live from {url}"


def read_store(config: GatewayConfig) -> dict[str, Any]:
    """The store's part of the status, read directly (no gateway running)."""
    from gateway.ops.routes import store_view, summarize

    async def main(store: Store) -> dict[str, Any]:
        volumes = VolumeCache(config.ops.volume_days, config.tz)
        now = time.time()
        part = await store.read(lambda tx: store_view(tx, config, volumes, now))
        sources: list[dict[str, Any]] = [
            {"name": s.name, "kind": s.adapter, "channel": _channel(s.adapter),
             "critical": s.critical, "state": "unknown" if s.enabled else "disabled",
             "reason": "", "since": None, "last_success": None, "consecutive_failures": 0,
             "counts": {}} for s in config.sources]
        doc: dict[str, Any] = {"generated_at": now, "store": {"engine": store.engine, "ok": True},
               "sources": sources, **part}
        doc["summary"] = summarize({**doc, "sources": []}, config.ops)
        return doc

    return with_store(config, main)


def _channel(adapter: str) -> str:
    from gateway.support import registry

    try:
        return str(getattr(registry.adapter_class(adapter), "channel", ""))
    except Exception:  # an adapter that does not load shows as its name
        return ""


def render(doc: dict[str, Any], origin: str) -> str:
    now = float(doc["generated_at"])
    when = datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds")
    out = [f"民声网关 运行状态 · Minsheng Gateway status — {origin} ({when})",
           f"总体 overall: {OVERALL.get(doc['summary']['state'], doc['summary']['state'])}"]
    out += [f"  ! {p['zh']} · {p['en']}" for p in doc["summary"]["problems"]]
    out += ["", "来源 SOURCES", _sources(doc["sources"], now)]
    out += ["", "转发目标 SINKS", _sinks(doc.get("sinks", []))]
    backlog = doc.get("backlog", {"pending": 0, "oldest_pending_age_s": 0})
    held = doc.get("quarantine", {})
    out += ["", f"积压 backlog: {backlog['pending']}"
            + _oldest(backlog["pending"], backlog["oldest_pending_age_s"])
            + f" · 死信 dead letters: {doc.get('dead_letters', 0)}"
            + _oldest(doc.get("dead_letters", 0), doc.get("dead_letters_oldest_age_s", 0.0))
            + f" · 隔离区 quarantine: {held.get('open', 0)}"
            + _oldest(held.get("open", 0), held.get("oldest_age_s", 0.0))]
    out += _volumes(doc)
    out += _rejections(doc, now)
    return "\n".join(out)


def _oldest(count: int, age_s: float) -> str:
    return f" (最久 oldest {duration(age_s)})" if count else ""


def _sources(sources: list[dict[str, Any]], now: float) -> str:
    rows = []
    for s in sources:
        counts = s.get("counts") or {}
        rows.append([
            s["name"] + (" *" if s.get("critical") else ""),
            CHANNELS.get(s.get("channel", ""), s.get("channel") or s.get("kind", "")),
            STATE_LABELS.get(s["state"], s["state"]), ago(s.get("since"), now),
            ago(s.get("last_success"), now), s.get("consecutive_failures", 0),
            sum(counts.values()), counts.get("rejected", 0), (s.get("reason") or "")[:60],
        ])
    if not rows:
        return "(未配置来源 no sources)"
    return table(["名称 source", "渠道 channel", "状态 state", "持续 since", "上次成功 last ok",
                  "连续失败 failures", "收到 received", "拒收 rejected", "原因 reason"],
                 rows, right={3, 4, 5, 6, 7})


def _sinks(sinks: list[dict[str, Any]]) -> str:
    headers = ["名称 sink", "类型 kind", "待转发 pending", "最久 oldest", "已送达 delivered",
               "死信 dead"]
    rows = [[s["name"], s["kind"], s["pending"],
             duration(s["oldest_pending_age_s"]) if s["pending"] else "—", s["delivered"],
             s["dead"]] for s in sinks]
    return table(headers, rows, right={2, 3, 4, 5})


def _volumes(doc: dict[str, Any]) -> list[str]:
    day = (doc.get("volumes") or {}).get("last_24h") or {}
    if not day:
        return ["", "近24小时 LAST 24 H: 暂无 (nothing received)"]
    rows = [[CHANNELS.get(c, c), t["received"], t["cases"], t["rejected"]]
            for c, t in sorted(day.items())]
    return ["", "近24小时 LAST 24 H", table(
        ["渠道 channel", "收到 received", "受理 cases", "拒收 rejected"], rows, right={1, 2, 3})]


def _rejections(doc: dict[str, Any], now: float) -> list[str]:
    rejections = doc.get("rejections") or []
    if not rejections:
        return []
    lines = ["", "最近拒收 LATEST REJECTIONS"]
    for r in rejections[:5]:
        reasons = "; ".join(f"{x['field']}: {x['zh']} ({x['en']})" for x in r["reasons"])
        lines.append(f"  {ago(r['at'], now)} ago  {r['source']}  {reasons}")
    return lines


@click.command("status")
@config_option
@click.option("--url", help="the running gateway (default: from server.listen)")
@json_option
def status(config_path: Path, url: str | None, as_json: bool) -> None:
    """Sources, sinks, backlog, dead letters and quarantine (exit 1: needs attention)."""
    config = load_or_exit(config_path)
    doc, origin = fetch_live(config, url or _base_url(config))
    if doc is None:
        click.echo(f"{origin}; 改为直接读取存储 reading the store instead", err=True)
        doc, origin = read_store(config), "直接读取存储 read from the store"
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        click.echo(render(doc, origin))
    sys.exit(0 if doc["summary"]["state"] == "ok" else 1)


if __name__ == "__main__":  # python -m gateway.cli.status (also: minsheng status)
    status()
