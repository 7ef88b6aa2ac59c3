"""The Open311 GeoReport v2 read side on both engines, over real HTTP: the services from
the ``open311:`` block, one case as a service request following its status history
(open → closed, the department, the service from the platform's category), no personal
data, and the config checks of the block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.model.errors import ConfigError
from gateway.server.app import Gateway
from gateway.support.config import load_config, parse_config
from tests.conftest import base_url, gateway_config

AUTH = {"Authorization": "Bearer test-api-token"}
OPEN311 = {"jurisdiction_id": "cy.example", "services": [
    {"code": "sanitation", "name": "环境卫生 Sanitation", "description": "垃圾、清扫",
     "group": "城乡建设", "keywords": ["垃圾", "清运"], "categories": ["城乡建设"]},
    {"code": "traffic", "name": "交通 Traffic", "categories": ["交通运输", "T01"]},
]}
FORM = {"name": "黄女士", "phone": "13800138000", "email": "huang@example.com",
        "address": "市南区香港中路 10 号 2 单元 301", "content": "垃圾三天未清运，电话13800138000"}


@pytest.fixture
async def gw311(tmp_path: Path, store_url: str) -> Any:
    gw = Gateway(gateway_config(tmp_path, store_url, open311=OPEN311))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def test_services_and_a_request_following_its_history(gw311: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gw311)) as client:
        services = await client.get("/open311/v2/services.json")
        other = await client.get("/open311/v2/services.json?jurisdiction_id=elsewhere")
        code = (await client.post("/intake/web", json=FORM)).json()["case_code"]
        fresh = await client.get(f"/open311/v2/requests/{code}.json?jurisdiction_id=cy.example")
        for body in ({"status": "assigned", "department": "城管局",
                      "at": "2026-12-04T10:00:00+08:00"},
                     {"status": "closed", "at": "2026-12-05T10:00:00+08:00",
                      "category": "城乡建设"}):
            posted = await client.post(f"/v1/cases/{code}/status", json=body, headers=AUTH)
            assert posted.status_code == 201
        closed = await client.get(f"/open311/v2/requests/{code.lower()}.json")
        missing = await client.get("/open311/v2/requests/CY-20191120-W-999999-0.json")
    assert services.status_code == 200
    assert services.json()[0] == {
        "service_code": "sanitation", "service_name": "环境卫生 Sanitation",
        "description": "垃圾、清扫", "metadata": False, "type": "realtime",
        "keywords": "垃圾,清运", "group": "城乡建设"}
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("application/problem+json")
    [opened] = fresh.json()
    assert opened["service_request_id"] == code and opened["status"] == "open"
    assert opened["agency_responsible"] is None and opened["service_code"] is None
    assert opened["requested_datetime"] == opened["updated_datetime"]
    [done] = closed.json()
    assert done["status"] == "closed" and done["status_notes"] == "已办结 (closed)"
    assert done["agency_responsible"] == "城管局"
    assert (done["service_code"], done["service_name"]) == ("sanitation", "环境卫生 Sanitation")
    assert done["updated_datetime"] == "2026-12-05T10:00:00+08:00"
    assert done["requested_datetime"] == opened["requested_datetime"]
    for personal in ("13800138000", "huang@example.com", "香港中路", "黄", "垃圾三天"):
        assert personal not in closed.text
    assert missing.status_code == 404


async def test_not_served_without_the_block(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        response = await client.get("/open311/v2/services.json")
        document = (await client.get("/openapi.json")).json()
    assert response.status_code == 404
    assert not [p for p in document["paths"] if p.startswith("/open311")]


def test_the_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINSHENG_API_TOKEN", "x")
    monkeypatch.setenv("OPEN311_API_KEY", "y")
    config = load_config(Path(__file__).resolve().parents[1] / "config/examples/open311.yaml")
    assert config.open311 is not None
    assert config.open311.service_for(["交通运输"]).code == "traffic"  # type: ignore[union-attr]
    assert [s.kind for s in config.sinks] == ["jsonl", "open311"]


def test_block_errors_all_at_once() -> None:
    bad = {"services": [{"code": "a b", "name": ""}, {"code": "x", "name": "X"},
                        {"code": "x", "name": "Y", "colour": 1}]}
    with pytest.raises(ConfigError) as caught:
        parse_config({"open311": bad})
    text = str(caught.value)
    assert "open311.services.0.code" in text and "open311.services.0.name" in text
    assert "colour" in text
    with pytest.raises(ConfigError, match="repeated: x"):
        parse_config({"open311": {"services": [{"code": "x", "name": "X"},
                                               {"code": "x", "name": "Y"}]}})
    assert json.dumps(parse_config({"open311": OPEN311}).model_dump(mode="json")["open311"])
