"""Health, the pull feed, per-source limits and authentication, over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from gateway.intake.pipeline import IntakeResult
from gateway.model.schema import RawRecord
from gateway.server.app import Gateway
from gateway.store import Store, cases
from tests.conftest import base_url, gateway_config

AUTH = {"Authorization": "Bearer test-api-token"}
FORM = {"name": "黄女士", "phone": "13800138000", "content": "测试内容"}


async def test_health_and_readiness(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        alive = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert alive.json() == {"status": "alive"}
    assert ready.status_code == 200
    assert ready.json()["store"] == "ok"
    assert ready.headers["X-Request-Id"]


async def test_pull_feed_pages_in_commit_order(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        codes = [
            (await client.post("/intake/web", json={**FORM, "content": f"第{i}件"})).json()[
                "case_code"]
            for i in range(5)
        ]
        seen: list[str] = []
        cursor = "0"
        while True:
            page = (await client.get(f"/v1/cases?after={cursor}&limit=2", headers=AUTH)).json()
            seen += [c["case_code"] for c in page["cases"]]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        one = await client.get(f"/v1/cases/{codes[2]}", headers=AUTH)
        missing = await client.get("/v1/cases/CY-20191120-W-999999-0", headers=AUTH)
        bad = await client.get("/v1/cases?limit=0", headers=AUTH)
    assert seen == codes
    assert one.json()["body"] == "第2件"
    assert missing.status_code == 404
    assert bad.status_code == 422


async def test_pull_feed_needs_the_token(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        none = await client.get("/v1/cases")
        wrong = await client.get("/v1/cases", headers={"Authorization": "Bearer nope"})
    assert none.status_code == 401
    assert wrong.status_code == 401
    assert none.headers["content-type"].startswith("application/problem+json")


async def test_source_token_and_body_limit(tmp_path: Path, store_url: str) -> None:
    config = gateway_config(tmp_path, store_url, sources=[{
        "name": "web", "adapter": "web_mailbox", "token": "site-secret", "max_body_kb": 1,
    }])
    gw = Gateway(config)
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            anonymous = await client.post("/intake/web", json=FORM)
            signed = await client.post("/intake/web", json=FORM,
                                       headers={"Authorization": "Bearer site-secret"})
            huge = await client.post("/intake/web", json={**FORM, "content": "长" * 2000},
                                     headers={"Authorization": "Bearer site-secret"})
    finally:
        await gw.stop()
    assert anonymous.status_code == 401
    assert signed.status_code == 202
    assert huge.status_code == 413


async def test_graceful_stop_answers_in_flight_requests(tmp_path: Path, store_url: str) -> None:
    """SIGTERM semantics: stop() lets requests already being handled finish and commit."""
    gw = Gateway(gateway_config(tmp_path, store_url))
    await gw.start()
    original = gw.intake.submit
    in_handler = 0

    async def slow_submit(raw: RawRecord, **kwargs: Any) -> IntakeResult:
        nonlocal in_handler
        in_handler += 1
        await asyncio.sleep(0.5)
        return await original(raw, **kwargs)

    gw.intake.submit = slow_submit  # type: ignore[method-assign]
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        pending = [
            asyncio.create_task(client.post("/intake/web", json={**FORM, "content": f"第{i}件"}))
            for i in range(10)
        ]
        while in_handler < 10:
            await asyncio.sleep(0.01)
        await gw.stop()
        answers = await asyncio.gather(*pending)
    assert [a.status_code for a in answers] == [202] * 10
    store = Store.from_url(store_url)
    await store.start()
    try:
        for response in answers:
            code = response.json()["case_code"]
            assert await store.read(lambda tx, c=code: cases.get_by_code(tx, c)) is not None
    finally:
        await store.close()


async def test_credentials_outside_ascii_are_refused_not_a_crash(tmp_path: Path) -> None:
    """``hmac.compare_digest`` raises on non-ASCII ``str``: every secret comparison must
    answer 401, never 500."""
    hotline = {"name": "hotline", "adapter": "cdr_webhook", "format": "generic_json",
               "ops_token": "ops-secret",
               "auth": {"scheme": "hmac", "secret": "pbx-secret"},
               "notes_auth": {"scheme": "bearer", "token": "desk-token"}}
    config = gateway_config(
        tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}",
        sources=[{"name": "web", "adapter": "web_mailbox", "token": "site-secret"}, hotline],
        ops={"token": "wall-token"})
    gw = Gateway(config)
    await gw.start()
    odd = {"Authorization": "Bearer 令牌é".encode()}  # raw UTF-8 bytes on the wire
    try:
        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            answers = {
                "pull feed": await client.get("/v1/cases", headers=odd),
                "web mailbox": await client.post("/intake/web", json=FORM, headers=odd),
                "ops page": await client.get(
                    "/ops", headers={**odd, "Cookie": "minsheng_ops=é".encode()}),
                "phone notes": await client.post("/intake/hotline/calls/c1/notes",
                                                  json={"content": "x"}, headers=odd),
                "phone ops": await client.get("/intake/hotline/calls/stats", headers=odd),
                "phone hmac": await client.post(
                    "/intake/hotline", content=b"{}",
                    headers={"X-Minsheng-Signature": "t=1,v1=签名".encode()}),
            }
    finally:
        await gw.stop()
    assert {name: a.status_code for name, a in answers.items()} == {
        "pull feed": 401, "web mailbox": 401, "ops page": 401, "phone notes": 401,
        "phone ops": 401, "phone hmac": 401}
