"""The shipped alerting rules and Grafana dashboard: valid for Prometheus (``promtool``,
Debian's ``prometheus`` package, installed by ``make test``), each alert fires on the
trouble it names and stays quiet otherwise, and every metric they use is one the
gateway really exposes."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.server.app import Gateway
from tests.conftest import base_url, gateway_config
from tests.test_metrics import GOOD, OpinionSource, add_pulled_source, running

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "config" / "grafana" / "minsheng.json"
METRIC = re.compile(r"\bminsheng_[a-z0-9_]+\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: `make system-deps` installs Debian's prometheus package")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)


def test_rules_file_passes_promtool_check() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 14 rules found" in result.stdout


def _alert(name: str, at: str, *expected: tuple[dict[str, str], dict[str, str]]
           ) -> dict[str, Any]:
    """At ``at``, exactly the ``expected`` (labels, annotations) alerts of ``name`` fire."""
    alerts = [{"exp_labels": labels, "exp_annotations": notes} for labels, notes in expected]
    return {"eval_time": at, "alertname": name, "exp_alerts": alerts}


def _down(source: str, channel: str) -> tuple[dict[str, str], dict[str, str]]:
    return {"severity": "warning", "source": source, "channel": channel}, {
        "summary": f"来源中断 source {source} ({channel}) down",
        "description": f"Source {source} has been down or disabled for 10 minutes; "
                       "see GET /v1/status for the reason."}


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    text = ",".join(f'{k}="{v}"' for k, v in sorted({**labels, "instance": "gw-1"}.items()))
    return {"series": f"{name}{{{text}}}", "values": values}


SOURCE_CASES = {
    "input_series": [
        _series("minsheng_source_state", "1x20", source="forum", channel="opinion",
                state="down"),
        _series("minsheng_source_state", "0x20", source="web", channel="web", state="down"),
        _series("minsheng_source_critical", "0x20", source="forum"),
        _series("minsheng_source_state", "1x20", source="hotline", channel="phone",
                state="disabled"),
        _series("minsheng_source_critical", "1x20", source="hotline"),
    ],
    "alert_rule_test": [
        _alert("MinshengSourceDown", "5m"),  # not yet: for 10m
        _alert("MinshengSourceDown", "11m", _down("forum", "opinion"), _down("hotline", "phone")),
        _alert("MinshengCriticalSourceDown", "1m"),
        _alert("MinshengCriticalSourceDown", "3m", ({"severity": "critical", "source": "hotline",
                                                    "channel": "phone"}, {
            "summary": "关键来源中断 critical source hotline down",
            "description": "Critical source hotline is down: /readyz fails."})),
    ],
}

FORWARDING_CASES = {
    "input_series": [
        _series("minsheng_outbox_oldest_pending_age_seconds", "0+60x40", sink="platform"),
        _series("minsheng_outbox_oldest_pending_age_seconds", "30x40", sink="file"),
        _series("minsheng_outbox_dead", "0 0 0 0 0 1 1 1 1 1", sink="platform"),
        _series("minsheng_outbox_dead", "2x10", sink="file"),
        _series("minsheng_store_up", "1 1 0 0 0 0 0"),
        # held: crosses 7 days (604800 s) between minutes 1 and 3
        _series("minsheng_outbox_oldest_dead_age_seconds", "500000+60000x10", sink="platform"),
        _series("minsheng_outbox_oldest_dead_age_seconds", "0x10", sink="file"),
        _series("minsheng_quarantine_oldest_open_age_seconds", "500000+60000x10"),
    ],
    "alert_rule_test": [
        _alert("MinshengBacklogAging", "15m"),
        _alert("MinshengBacklogAging", "25m", ({"severity": "warning", "sink": "platform"}, {
            "summary": "转发积压 backlog to platform older than 15 min",
            "description": "The oldest undelivered case for sink platform is 25m 0s old."})),
        _alert("MinshengDeadLettersGrowing", "3m"),
        _alert("MinshengDeadLettersGrowing", "6m", ({"severity": "warning", "sink": "platform"}, {
            "summary": "死信增加 dead letters growing for platform",
            "description": "New dead letters for sink platform in the last 30 minutes: "
                           "`minsheng dlq list`, fix, then `minsheng dlq replay`."})),
        _alert("MinshengDeadLettersHeldLong", "1m"),
        _alert("MinshengDeadLettersHeldLong", "3m", ({"severity": "warning", "sink": "platform"}, {
            "summary": "死信久存 dead letters held over 7 days for platform",
            "description": "The oldest dead letter for sink platform is 7d 20h 53m 20s old: "
                           "`minsheng dlq list`, fix, then `minsheng dlq replay`."})),
        _alert("MinshengQuarantineHeldLong", "1m"),
        _alert("MinshengQuarantineHeldLong", "3m", ({"severity": "warning"}, {
            "summary": "隔离区久存 quarantine held over 7 days",
            "description": "The oldest open quarantine entry is 7d 20h 53m 20s old: "
                           "`minsheng quarantine list`, then reprocess or drop it."})),
        _alert("MinshengStoreUnavailable", "3m"),
        _alert("MinshengStoreUnavailable", "5m", ({"severity": "critical", "instance": "gw-1"}, {
            "summary": "存储不可用 store unreachable from gw-1",
            "description": "The gateway cannot read its store: nothing new is accepted (503)."})),
    ],
}

INTAKE_CASES = {
    "input_series": [
        # forum: 10 received and 5 rejected a minute; web: 1 a minute, a fifth rejected.
        _series("minsheng_intake_received_total", "0+10x40", source="forum", channel="opinion"),
        _series("minsheng_intake_items_total", "0+5x40", source="forum", channel="opinion",
                outcome="rejected"),
        _series("minsheng_intake_received_total", "0+1x40", source="web", channel="web"),
        _series("minsheng_intake_items_total", "0+0.5x40", source="web", channel="web",
                outcome="rejected"),
        _series("minsheng_calls_answered_within_15s_ratio", "0.95x10 0.8x30"),
        # web: a flood refused at 1/s from minute 5; hotline: a PBX with a wrong secret.
        _series("minsheng_intake_refused_total", "0x5 0+60x35", source="web",
                reason="rate_limited"),
        _series("minsheng_intake_refused_total", "0x10 0+1x30", source="hotline",
                reason="bad_signature"),
        _series("minsheng_intake_refused_total", "0+1x5 5x35", source="web",
                reason="unauthorized"),
        _series("up", "1x5 0x10", job="minsheng"),
        # the classifier fails on every case from minute 11; routing never fails.
        _series("minsheng_routing_hint_failures_total", "0x10 0+1x30", hint="classification"),
        _series("minsheng_routing_hint_failures_total", "0x40", hint="routing"),
    ],
    "alert_rule_test": [
        _alert("MinshengRejectionSpike", "25m", ({"severity": "warning", "source": "forum",
                                                 "channel": "opinion"}, {
            "summary": "拒收激增 rejection spike on forum",
            "description": "50% of what forum sent in 15 minutes was rejected: a changed form "
                           "or feed? See the latest rejections on /ops."})),
        _alert("MinshengAnsweredWithin15sLow", "20m"),
        _alert("MinshengAnsweredWithin15sLow", "30m", ({"severity": "warning"}, {
            "summary": "15秒接通率偏低 answered within 15 s below target",
            "description": "Only 80% of calls were answered within 15 s (target 85 %)."})),
        _alert("MinshengIntakeFlood", "12m"),  # not yet: for 10m
        _alert("MinshengIntakeFlood", "25m", ({"severity": "warning", "source": "web"}, {
            "summary": "提交被限流 web is refusing a flood",
            "description": "web refused 1 submissions/s over the rate limit for 10 minutes; "
                           "the client networks are in the rate_limited log lines "
                           "(docs/web-mailbox.md#rate-limits)."})),
        _alert("MinshengIntakeCredentialsRefused", "5m"),  # web's 5 refusals are over
        _alert("MinshengIntakeCredentialsRefused", "25m", ({
            "severity": "warning", "source": "hotline", "reason": "bad_signature"}, {
            "summary": "认证被拒 hotline refuses requests (bad_signature)",
            "description": "hotline refused 14 requests in 15 minutes (bad_signature); refused "
                           "requests are not journaled: check the sender's credentials."})),
        _alert("MinshengRoutingHintsFailing", "12m"),
        _alert("MinshengRoutingHintsFailing", "25m", ({"severity": "warning",
                                                      "hint": "classification"}, {
            "summary": "分派提示失败 routing hint classification failing",
            "description": "14 cases in 15 minutes were filed without their classification "
                           "hint; see the routing_hint_failed log lines (docs/routing.md)."})),
        _alert("MinshengGatewayDown", "6m"),
        _alert("MinshengGatewayDown", "9m", ({"severity": "critical", "instance": "gw-1",
                                             "job": "minsheng"}, {
            "summary": "网关无法抓取 gateway gw-1 not scraped",
            "description": "Prometheus cannot reach /metrics on gw-1 for 2 minutes."})),
    ],
}


def test_each_alert_fires_on_its_trouble_and_only_then(tmp_path: Path) -> None:
    tests = [{"interval": "1m", **case} for case in (SOURCE_CASES, FORWARDING_CASES,
                                                     INTAKE_CASES)]
    spec = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": tests}
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = run_promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {t["alertname"] for case in tests for t in case["alert_rule_test"]}
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"][0]["rules"]
    assert tested >= {r["alert"] for r in rules} - {"MinshengQuarantineGrowing"}


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    broken = ALERTS.read_text(encoding="utf-8").replace("minsheng_store_up == 0",
                                                        "minsheng_store_up === 0")
    path = tmp_path / "alerts.yml"
    path.write_text(broken, encoding="utf-8")
    assert run_promtool("check", "rules", str(path)).returncode != 0


def _expressions() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"][0]["rules"]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [str(r["expr"]) for r in rules]
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return exprs


async def _exposed_names(tmp_path: Path, monkeypatch: Any) -> set[str]:
    """Every metric name a gateway with all its parts exposes, from a real scrape."""
    calls = types.ModuleType("adapters.cdr_webhook.flow")
    calls.kpis = lambda tx, now: {  # type: ignore[attr-defined]
        "answered_within_15s_ratio": 0.9, "abandoned_total": 1}
    monkeypatch.setitem(sys.modules, "adapters.cdr_webhook.flow", calls)
    async with running(Gateway(gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}"))) as gw:
        forum = OpinionSource("forum", ["井盖缺失"])
        add_pulled_source(gw, forum)
        async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
            assert (await client.post("/intake/web", json=GOOD)).status_code == 202
            assert (await client.post("/intake/web", json={"content": ""})).status_code == 422
            while gw.status.sources["forum"].last_poll_s is None:
                await asyncio.sleep(0.02)
            text = (await client.get("/metrics")).text
    samples = re.findall(r"^([a-z_:][a-z0-9_:]*)[{ ]", text, re.MULTILINE)
    declared = re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE)  # also those without samples
    return {*samples, *declared}


async def test_alerts_and_dashboard_use_only_exposed_metrics(
    tmp_path: Path, monkeypatch: Any
) -> None:
    exposed = await _exposed_names(tmp_path, monkeypatch)
    used = {name for expr in _expressions() for name in METRIC.findall(expr)}
    assert used, "no metric found in the rules and the dashboard"
    assert used - exposed == set()
    unused = {n for n in exposed if n.startswith("minsheng_")} - used
    unused = {n for n in unused if not n.endswith(("_created", "_count", "_sum"))
              and not {f"{n}_bucket", f"{n}_total"} & used}
    assert unused <= {"minsheng_gateway_started", "minsheng_source_state_since_timestamp_seconds",
                      "minsheng_outbox_delivered"}


def test_dashboard_is_a_grafana_import_with_its_datasource_input() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "minsheng-gateway"
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not area & cells, f"panel {panel['title']} overlaps another"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
            assert re.search(r"[\u4e00-\u9fff].* [A-Za-z]", panel["title"]), panel["title"]
