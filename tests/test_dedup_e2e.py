"""Dedup end to end, on both engines: a gateway serving real HTTP, a phone complaint and a
later e-mail and web form from the same person (repeats), neighbours posting the same
matter (related, one cluster), a hot-topic event to the sink that asks for events, and
the ``clusters top`` / ``dedup explain`` commands on the same store.

The phone and e-mail adapters are built elsewhere: their records enter here through
``Intake.submit`` with a JSON normalizer bound to a "phone" and an "email" source.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from gateway.cli.dedup import clusters, dedup_group
from gateway.intake.pipeline import IntakeResult, SourceBinding
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import RawRecord
from gateway.server.app import Gateway
from gateway.support.config import parse_config
from tests.conftest import TEST_PRIVACY, base_url, sink_lines
from tests.pg import free_port
from tests.test_dedup_store import CHANNELS, NOISE, NOISE_AGAIN, json_draft

CALLER = "+8613800138000"


def raw_config(tmp_path: Path, store_url: str) -> dict[str, Any]:
    return {
        "region_code": "CY",
        "data_dir": str(tmp_path / "var"),
        "server": {"listen": f"127.0.0.1:{free_port()}", "shutdown_timeout_s": 5},
        "store": {"url": store_url},
        "privacy": TEST_PRIVACY,
        "log": {"format": "json", "level": "warning"},
        "sources": [{"name": "web", "adapter": "web_mailbox"}],
        "sinks": [
            {"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl"),
             "poll_interval_s": 0.1},
            {"name": "alerts", "kind": "jsonl", "path": str(tmp_path / "alerts.jsonl"),
             "poll_interval_s": 0.1, "events": True},
        ],
        "dedup": {"hot_topic_cases": 4, "hot_topic_hours": 1},
    }


@pytest.fixture
async def gw(tmp_path: Path, store_url: str) -> AsyncIterator[Gateway]:
    raw = raw_config(tmp_path, store_url)
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    gateway = Gateway(parse_config(raw))
    await gateway.start()
    for source in ("hotline", "mailbox"):  # stand-ins for the phone and e-mail adapters
        gateway.intake.bindings[source] = SourceBinding(json_draft, NormalizerContext(source))
    try:
        yield gateway
    finally:
        await gateway.stop()


async def submit(gateway: Gateway, source: str, ref: str, **fields: Any) -> IntakeResult:
    record = RawRecord(
        channel=CHANNELS[source],  # type: ignore[arg-type]
        source=source, source_ref=ref,
        payload=json.dumps(fields, ensure_ascii=False).encode(),
        content_type="application/json", received_at=datetime.now(UTC),
    )
    return await gateway.intake.submit(record)


def form(phone: str, content: str) -> dict[str, str]:
    return {"name": "居民", "phone": phone, "subject": "工地夜间施工噪音", "content": content,
            "address": "城阳区正阳路"}


async def test_phone_then_email_then_web_form_then_neighbours(
    gw: Gateway, tmp_path: Path
) -> None:
    call = await submit(gw, "hotline", "call-1", body=NOISE, phone=CALLER)
    mail = await submit(gw, "mailbox", "<m-1@example.com>", body=NOISE_AGAIN,
                        email="huang@example.com", phone=CALLER)
    assert call.outcome == "new"
    assert (mail.outcome, mail.repeat_of) == ("repeat", call.case_code)

    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        posted = await client.post("/intake/web", json=form("138 0013 8000", NOISE + "已经一周了"),
                                   headers={"Idempotency-Key": "form-1"})
        twice = await client.post("/intake/web", json=form("13800138000", NOISE + "已经一周了！"),
                                  headers={"Idempotency-Key": "form-2"})
        neighbours = [await client.post("/intake/web", json=form(f"1390013900{i}", NOISE))
                      for i in range(3)]
    assert posted.status_code == 202
    code = posted.json()["case_code"]
    assert posted.json() == {"outcome": "repeat", "case_code": code,
                             "repeat_of": call.case_code}
    assert (twice.status_code, twice.json()) == (200, {"outcome": "replay", "case_code": code})
    answers = [n.json() for n in neighbours]
    assert [n.status_code for n in neighbours] == [202, 202, 202]
    assert {a["outcome"] for a in answers} == {"related"}
    cluster = answers[0]["cluster_id"]
    assert {a["cluster_id"] for a in answers} == {cluster}

    # 6 cases (3 neighbours), 1 update (the case that opened the cluster), to each sink;
    # the hot topic (4 cases in the cluster within the hour) to "alerts" only.
    forwarded = await sink_lines(tmp_path / "cases.jsonl", 7)
    alerts = await sink_lines(tmp_path / "alerts.jsonl", 8)
    assert len(forwarded) == 7 and len(alerts) == 8
    assert not [line for line in forwarded if line.get("type") == "hot_topic"]
    [hot] = [line for line in alerts if line.get("type") == "hot_topic"]
    assert (hot["cluster_id"], hot["count"]) == (cluster, 4)
    assert hot["latest_case_code"] == answers[2]["case_code"]
    by_code = {line["case_code"]: line for line in forwarded if line["dedup"]["kind"] != "new"}
    assert by_code[code]["dedup"]["kind"] == "repeat"
    assert by_code[code]["dedup"]["repeat_of"] == call.case_code
    assert by_code[code]["channel"] == "web" and by_code[code]["reporter"]["phone"] == CALLER
    assert by_code[answers[1]["case_code"]]["dedup"]["cluster_id"] == cluster

    explained = await cli(tmp_path, dedup_group, "explain", code)
    assert explained.exit_code == 0, explained.output
    assert f"repeat of:        {call.case_code}" in explained.output
    assert "tel:+86138****8000" in explained.output and CALLER not in explained.output
    as_json = json.loads((await cli(tmp_path, dedup_group, "explain", code, "--json")).output)
    assert (as_json["matched_case"], as_json["shared_reporter_key"]) == (
        call.case_code, "tel:+86138****8000")
    assert 0.4 <= as_json["similarity"] <= 1

    top = await cli(tmp_path, clusters, "top", "--since", "1h", "--json")
    assert top.exit_code == 0, top.output
    [found] = json.loads(top.output)
    assert (found["cluster_id"], found["recent"], found["size"], found["hot_events"]) == (
        cluster, 4, 4, 1)
    missing = await cli(tmp_path, dedup_group, "explain", "CY-20190101-W-000001-0")
    assert missing.exit_code == 1


async def cli(tmp_path: Path, group: Any, *args: str) -> Result:
    """Run a command of ``group`` with the gateway's config (in a thread: it runs its
    own event loop)."""
    argv = [*args, "--config", str(tmp_path / "gateway.yaml")]
    return await asyncio.to_thread(CliRunner().invoke, group, argv)
