"""Routing hints at intake, on both engines: a web complaint gets its classification,
routing and due_at; a hint that breaks leaves the case filed without it and is counted
in /metrics; a phone call (its own flow, ``Intake.file_case``) gets them too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from gateway.routing.classifier import TrainedModel, train
from gateway.routing.evaluation import read_labelled
from gateway.server.app import Gateway, build_intake
from gateway.store import Store, cases
from tests.conftest import base_url, gateway_config
from tests.fixtures.cdr import case, read, running
from tests.fixtures.cdr import source as phone_source
from tests.fixtures.cdr import url as phone_url
from tests.test_pipeline import web_raw
from tests.test_routing_classifier import write_csv

ROOT = Path(__file__).resolve().parents[1]
ROUTING = {
    "taxonomy": {"path": str(ROOT / "config" / "routing" / "taxonomy.yaml")},
    "routing": {"rules": str(ROOT / "config" / "routing" / "rules.yaml")},
}


def model_file(tmp_path: Path) -> Path:
    data = read_labelled(write_csv(tmp_path / "history.csv"), ["主题", "详情"], "分类")
    path = tmp_path / "model.skops"
    train(data.texts, data.labels).save(path)
    return path


async def document(store: Store, code: str | None) -> dict[str, Any]:
    assert code is not None
    row = await store.read(lambda tx: cases.get_by_code(tx, code))
    assert row is not None
    parsed: dict[str, Any] = json.loads(row.document)
    return parsed


async def test_web_complaint_carries_its_hints(store: Store, store_url: str,
                                               tmp_path: Path) -> None:
    config = gateway_config(tmp_path, store_url, **ROUTING, classifier={
        "model": str(model_file(tmp_path)), "threshold": 0.34})
    intake = build_intake(config, store)
    result = await intake.submit(web_raw("web-1"))  # 共享单车乱停放 … 堆放严重 (19 Nov 2019)
    doc = await document(store, result.case_code)
    assert doc["classification"]["code"] == "JT"
    assert doc["classification"]["path"] == ["交通运输"]
    assert doc["classification"]["model"].startswith("char-svm-v1:")
    assert doc["routing"] == {"department": "城市管理局", "rule": "bike-parking-sidewalk",
                              "reason": "正则 regex /(共享单车|单车).{0,30}"
                              "(乱停|乱放|堆放|占道|挡)/ 匹配 matched '共享单车乱停'",
                              "priority": None}
    # Received 01:30 on Wednesday 20 November 2019 in Shanghai: due Monday 25th.
    assert doc["due_at"] == "2019-11-25T09:30:00Z"


async def test_below_the_threshold_no_classification(store: Store, store_url: str,
                                                     tmp_path: Path) -> None:
    config = gateway_config(tmp_path, store_url, **ROUTING, classifier={
        "model": str(model_file(tmp_path)), "threshold": 1.0})
    result = await build_intake(config, store).submit(web_raw("web-1"))
    doc = await document(store, result.case_code)
    assert "classification" not in doc or doc["classification"] is None
    assert doc["routing"]["rule"] == "bike-parking-sidewalk"  # rules need no class


class BrokenModel(TrainedModel):
    """A model that fails on every complaint (mocked: a real model does not fail on
    demand); the pipeline must file the case anyway."""

    def predict(self, subject: str, body: str) -> tuple[str, float]:
        raise MemoryError("no memory for the features")


async def test_a_failing_hint_never_blocks_intake_and_is_counted(
    tmp_path: Path, store_url: str,
) -> None:
    config = gateway_config(tmp_path, store_url, **ROUTING, classifier={
        "model": str(model_file(tmp_path))})
    gateway = Gateway(config)
    await gateway.start()
    try:
        working = gateway.routing_hints.model
        assert working is not None
        gateway.routing_hints.model = BrokenModel(working.pipeline, working.metadata)
        result = await gateway.intake.submit(web_raw("web-1"))
        assert result.outcome == "new"
        doc = await document(gateway.store, result.case_code)
        assert doc.get("classification") is None
        assert doc["routing"]["department"] == "城市管理局" and doc["due_at"]
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{base_url(gateway)}/metrics")).text
        assert 'minsheng_routing_hint_failures_total{hint="classification"} 1.0' in metrics
        assert 'minsheng_routing_hint_failures_total{hint="routing"} 0.0' in metrics
    finally:
        await gateway.stop()


async def test_phone_case_carries_its_hints(tmp_path: Path, store_url: str) -> None:
    """The phone flow files joined calls itself (``Intake.file_case``): same hints."""
    hotline = phone_source("hotline", "generic_json")
    async with running(tmp_path, store_url, hotline, **ROUTING, classifier={
            "model": str(model_file(tmp_path)), "threshold": 0.34}) as gw, \
            httpx.AsyncClient(base_url=phone_url(gw)) as client:
        filed = await client.post("/intake/hotline", json=json.loads(
            read("generic_answered.json")))
        assert filed.status_code == 202, filed.text
        complaint = await case(gw, client, filed.json()["case_code"])
    # 夜间施工噪音扰民 (night construction noise): 环境保护 in the test's own history.
    assert complaint["classification"]["code"] == "HB"
    assert complaint["routing"]["department"] == "生态环境局"
    assert complaint["routing"]["rule"] == "taxonomy"
    assert complaint["due_at"] is not None
