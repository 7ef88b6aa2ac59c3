"""Hotline KPIs and overdue notes, from calls sent over HTTP, read back by the
``minsheng calls`` commands (a real process) and the operations routes, on both engines."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import yaml

from gateway.server.app import Gateway
from tests.conftest import TEST_PRIVACY
from tests.fixtures.cdr import OPS_TOKEN, generic, read, running
from tests.fixtures.cdr import source as phone_source
from tests.fixtures.cdr import url as base

ROOT = Path(__file__).resolve().parent.parent
DAY = datetime(2024, 5, 6, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
HOTLINE = phone_source("hotline", "generic_json", missed_calls="callback")
QUICK = phone_source("quick", "generic_json", notes_timeout_min=0.005)  # 0.3 s
CTI = phone_source("cti", "zammad_cti")
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


def call(n: int, ring: int | None, talk: int = 60, *, notes: bool = True,
         disposition: str | None = None, direction: str = "inbound") -> dict[str, Any]:
    start = DAY + timedelta(minutes=n)
    record = generic(
        "generic_answered.json", call_id=f"kpi-{n}", caller=f"1390532{n:04d}",
        direction=direction, started_at=start.isoformat(), disposition=disposition,
        answered_at=(start + timedelta(seconds=ring)).isoformat() if ring is not None else None,
        ended_at=(start + timedelta(seconds=(ring or 0) + talk)).isoformat(),
    )
    if not notes or ring is None:
        record.pop("notes")
    return record


async def minsheng_calls(config: Path, *args: str) -> tuple[int, str]:
    """``minsheng calls ARGS`` in its own process (its group, before cli.py wires it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from adapters.cdr_webhook.cli import calls; calls()", *args,
        "--config", str(config), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


def write_config(tmp_path: Path, gw: Gateway) -> Path:
    path = tmp_path / "gateway.yaml"
    raw = gw.config.model_dump(mode="json", exclude={"api"})
    raw["sources"] = [HOTLINE, QUICK, CTI]
    raw["sinks"] = []
    raw["privacy"] = TEST_PRIVACY  # model_dump masks the key
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


async def test_stats_from_the_calls_themselves(tmp_path: Path, store_url: str) -> None:
    records = [call(1, 5), call(2, 12, notes=False), call(3, 15), call(4, 20), call(5, 40),
               call(6, None, disposition="abandoned"), call(7, None, disposition="abandoned"),
               call(8, None, disposition="no_answer"), call(9, 3, direction="outbound")]
    new_call = json.loads(read("zammad_answered.jsonl").splitlines()[0])
    async with running(tmp_path, store_url, HOTLINE, QUICK, CTI) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as client:
        for record in records:
            assert (await client.post("/intake/hotline", json=record)).status_code == 202
        assert (await client.post("/intake/cti", json=new_call)).status_code == 202
        over_http = (await client.get("/intake/hotline/calls/stats?since=2024-05-06",
                                      headers=OPS)).json()
        config = write_config(tmp_path, gw)
        code, out = await minsheng_calls(config, "stats", "--since", "2024-05-06",
                                         "--until", "2024-05-07", "--json")
        _, recent = await minsheng_calls(config, "stats", "--json")  # the last 24 h
        _, table = await minsheng_calls(config, "stats", "--since", "2024-05-06T09:00")
    assert code == 0, out
    stats = json.loads(out)
    expected = {
        "offered": 8, "answered": 5, "abandoned": 2, "unanswered_other": 1, "in_progress": 0,
        "answered_within": 3, "service_level": 0.375, "answered_share": 0.625,
        "ring_p50": 15, "ring_p90": 40, "ring_max": 40, "awaiting_notes": 1,
        "callback_cases": 3, "outbound": 1,
        "ring_histogram": {"0-5s": 0, "5-10s": 1, "10-15s": 1, "15-20s": 1, "20-30s": 1,
                           "30-60s": 1, "60s+": 0},
    }
    assert {k: stats[k] for k in expected} == expected
    assert {k: over_http[k] for k in expected} == expected
    assert (json.loads(recent)["offered"], json.loads(recent)["in_progress"]) == (1, 1)
    assert "服务水平 service level 37.5%" in table and "放弃 abandoned               2" in table


async def test_answered_calls_without_notes_are_reported_overdue(tmp_path: Path,
                                                                 store_url: str) -> None:
    async with running(tmp_path, store_url, HOTLINE, QUICK, CTI) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as client:
        await client.post("/intake/quick", json=call(1, 8, notes=False))
        await client.post("/intake/hotline", json=call(2, 8, notes=False))  # 30 min to go
        await client.post("/intake/quick/calls/kpi-lonely/notes", json=json.loads(
            read("notes.json")))  # notes whose call record never comes
        await asyncio.sleep(0.6)
        config = write_config(tmp_path, gw)
        code, out = await minsheng_calls(config, "overdue", "--json")
        listed = json.loads(out)
        over_http = (await client.get("/intake/quick/calls/overdue", headers=OPS)).json()
        filed = await client.post("/intake/quick/calls/kpi-1/notes",
                                  json=json.loads(read("notes.json")))
        _, after = await minsheng_calls(config, "overdue")
        anonymous = await client.get("/intake/cti/calls/overdue", headers={})
        wrong = await client.get("/intake/quick/calls/overdue",
                                 headers={"Authorization": "Bearer nope"})
    assert code == 0
    assert sorted((c["call_id"], c["waiting_for"]) for c in listed) == [
        ("kpi-1", "notes"), ("kpi-lonely", "call")]
    assert [c["call_id"] for c in over_http["overdue"]] == ["kpi-1", "kpi-lonely"]
    assert filed.json()["outcome"] == "new"
    assert "kpi-lonely" in after and "kpi-1\t" not in after and "kpi-2" not in after
    assert (anonymous.status_code, wrong.status_code) == (401, 401)


async def test_ops_routes_need_an_ops_token(tmp_path: Path, store_url: str) -> None:
    closed = {**HOTLINE, "ops_token": "${NO_SUCH_OPS_TOKEN:-}"}
    async with running(tmp_path, store_url, closed) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as client:
        answer = await client.get("/intake/hotline/calls/stats", headers=OPS)
    assert answer.status_code == 403
    assert answer.json()["type"].endswith("/ops-disabled")
