"""The access log (issue 18, item 5) on both engines: one row per read through the pull
feed, the case look-up, the attachment route, the Open311 read and the CLI, naming the
actor and what was read but never a personal field; ``minsheng audit list``; the purge
keeps 180 days and more."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import ValidationError

from gateway.model.audit_action import AuditAction
from gateway.server.app import Gateway
from gateway.store import Store, audit
from gateway.store.purge_loop import DAY_S, PurgeLoop
from gateway.support.privacy_config import PrivacyConfig
from tests.conftest import TEST_PRIVACY, base_url, gateway_config, started_store
from tests.procs import run_cli

AUTH = {"Authorization": "Bearer test-api-token"}
PHONE, NAME, EMAIL = "13800138000", "黄女士", "huang@example.com"
FORM = {"name": NAME, "phone": PHONE, "email": EMAIL, "content": "小区门口垃圾三天未清运"}
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
OPEN311 = {"jurisdiction_id": "cy.example", "services": [
    {"code": "sanitation", "name": "环境卫生 Sanitation", "categories": ["城乡建设"]}]}


def _entries(store: Store, **filters: Any) -> Any:
    return store.read(lambda tx: audit.entries(tx, 0.0, **filters))


def _holds_no_personal_field(rows: list[audit.AuditEntry]) -> None:
    text = json.dumps([r.as_json() for r in rows], ensure_ascii=False)
    for value in (PHONE, PHONE[-4:] + '"', NAME, EMAIL, "黄"):
        assert value not in text


@pytest.fixture
async def gw(tmp_path: Path, store_url: str) -> Any:
    gateway = Gateway(gateway_config(tmp_path, store_url, open311=OPEN311))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


async def test_every_read_route_leaves_one_row(gw: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        filed = await client.post("/intake/web", data=FORM,
                                  files=[("photo", ("p.png", PHOTO, "image/png"))])
        assert filed.status_code == 202, filed.text
        code = filed.json()["case_code"]
        feed = await client.get("/v1/cases?after=0&limit=10", headers=AUTH)
        empty = await client.get(f"/v1/cases?after={feed.json()['next_cursor']}", headers=AUTH)
        case = await client.get(f"/v1/cases/{code.lower()}", headers=AUTH)
        missing = await client.get("/v1/cases/CY-20191120-W-999999-0", headers=AUTH)
        digest = hashlib.sha256(PHOTO).hexdigest()
        photo = await client.get(f"/v1/attachments/{digest}", headers=AUTH)
        georeport = await client.get(f"/open311/v2/requests/{code}.json")
        refused = await client.get("/v1/cases?after=0", headers={"Authorization": "Bearer no"})
    assert [r.status_code for r in (feed, empty, case, missing, photo, georeport, refused)] == [
        200, 200, 200, 404, 200, 200, 401]
    rows = await _entries(gw.store)
    position = feed.json()["next_cursor"]
    assert [(r.actor, r.action, r.target, r.detail) for r in rows] == [
        ("api", "feed.read", f"feed:{position}-{position}",
         {"after": 0, "limit": 10, "count": 1, "first": code, "last": code}),
        ("api", "feed.read", f"feed:{position}+0", {"after": int(position), "limit": 100,
                                                    "count": 0}),
        ("api", "case.read", code, {"found": True}),
        ("api", "case.read", "CY-20191120-W-999999-0", {"found": False}),
        ("api", "attachment.read", digest, {"found": True}),
        ("public", "open311.read", code, {"found": True}),
    ]  # the refused request read nothing: no row
    assert all(time.time() - 600 < r.at <= time.time() for r in rows)
    _holds_no_personal_field(rows)
    by_action = await _entries(gw.store, action="case.read")
    assert [r.target for r in by_action] == [code, "CY-20191120-W-999999-0"]


def _cli_config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump({"store": {"url": store_url}, "privacy": TEST_PRIVACY,
                                    "data_dir": str(tmp_path / "var")}), encoding="utf-8")
    return path


def test_commands_leave_rows_and_audit_list_shows_them(tmp_path: Path, store_url: str) -> None:
    async def fill() -> str:
        gateway = Gateway(gateway_config(tmp_path, store_url))
        await gateway.start()
        try:
            async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
                response = await client.post("/intake/web", json=FORM)
                code: str = response.json()["case_code"]
                await client.get(f"/v1/cases/{code}", headers=AUTH)
            return code
        finally:
            await gateway.stop()

    code = asyncio.run(fill())
    config = str(_cli_config(tmp_path, store_url))
    shown = run_cli("cases", "show", code, "--config", config)
    assert shown.returncode == 0, shown.stderr
    for command in (["quarantine", "list"], ["dlq", "list"], ["calls", "overdue"]):
        done = run_cli(*command, "--config", config)
        assert done.returncode == 0, done.stderr
    me = f"os:{getpass.getuser()}"

    listed = run_cli("audit", "list", "--since", "7d", "--config", config)
    assert listed.returncode == 0, listed.stderr
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [line[1:4] for line in lines] == [
        ["api", "case.read", code], [me, "cases.show", code], [me, "quarantine.list", "quarantine"],
        [me, "dlq.list", "dlq"], [me, "calls.overdue", "calls:*"]]
    assert lines[1][4] == "found=True" and lines[2][4] == "count=0"

    mine = run_cli("audit", "list", "--actor", me, "--action", "cases.show", "--json",
                   "--config", config)
    assert mine.returncode == 0, mine.stderr
    assert [(e["actor"], e["target"]) for e in json.loads(mine.stdout)] == [(me, code)]
    later = run_cli("audit", "list", "--since", "2999-01-01", "--config", config)
    assert later.stdout.strip() == "没有访问记录 (no access log entries)"
    bad = run_cli("audit", "list", "--action", "case.eaten", "--config", config)
    assert bad.returncode == 2 and "case.eaten" in bad.stderr


async def test_purge_keeps_the_retention_in_chunks(store: Store) -> None:
    now = time.time()
    ages = [400, 366, 365.5, 364, 200, 181, 179, 1, 0]

    def fill(tx: Any) -> None:
        for days in ages:
            audit.record(tx, "api", AuditAction.CASE_READ, f"age {days}")
            tx.execute("UPDATE audit_log SET at = ? WHERE target = ?",
                       (now - days * DAY_S, f"age {days}"))

    await store.write(fill)
    year = PurgeLoop(store, "audit_log", audit.purge, 365 * DAY_S, chunk=2)
    assert await year.purge_once(now) == 3  # 2 chunks: 2 + 1
    kept = [r.target for r in await _entries(store)]
    assert kept == [f"age {d}" for d in ages[3:]]
    minimum = PurgeLoop(store, "audit_log", audit.purge, 180 * DAY_S, chunk=1000)
    assert await minimum.purge_once(now) == 3
    assert [r.target for r in await _entries(store)] == ["age 179", "age 1", "age 0"]


def test_retention_of_the_access_log_is_at_least_180_days() -> None:
    assert PrivacyConfig().audit_retention_days == 365
    assert PrivacyConfig(audit_retention_days=180).audit_retention_days == 180
    with pytest.raises(ValidationError, match="greater than or equal to 180"):
        PrivacyConfig(audit_retention_days=179)


async def test_a_second_replica_sees_one_log(store: Store, store_url: str) -> None:
    async with started_store(store_url) as other:
        await store.write(lambda tx: audit.record(tx, "api", AuditAction.FEED_READ, "feed:1-2"))
        await other.write(lambda tx: audit.record(tx, "ops", AuditAction.CASE_READ, "X"))
    assert [(r.actor, r.target) for r in await _entries(store)] == [
        ("api", "feed:1-2"), ("ops", "X")]


async def test_the_phone_channels_overdue_list_leaves_a_row(tmp_path: Path,
                                                            store_url: str) -> None:
    """``GET /intake/<source>/calls/overdue`` lists callers' numbers: an ``ops`` read."""
    hotline = {"name": "hotline", "adapter": "cdr_webhook", "ops_token": "phone-ops-token",
               "auth": {"scheme": "bearer", "token": "phone-ivr-token"}}
    gateway = Gateway(gateway_config(tmp_path, store_url, sources=[hotline]))
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
            listed = await client.get("/intake/hotline/calls/overdue",
                                      headers={"Authorization": "Bearer phone-ops-token"})
            refused = await client.get("/intake/hotline/calls/overdue")
        rows = await _entries(gateway.store)
    finally:
        await gateway.stop()
    assert (listed.status_code, refused.status_code) == (200, 401)
    assert [(r.actor, r.action, r.target, r.detail) for r in rows] == [
        ("ops", "calls.overdue", "calls:hotline", {"count": 0})]
