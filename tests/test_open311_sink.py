"""The ``open311`` sink against a GeoReport v2 endpoint written from the spec
(tests/open311_server.py), which checks the form fields and answers each shape: a
service_request_id, a token, the spec's error array with a 4xx or a 5xx."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.connect import check_connections
from gateway.delivery.sinks.open311 import Open311Options, Open311Sink, read_answer, request_form
from gateway.model.errors import PermanentSinkError, RetriableSinkError
from gateway.server.app import Gateway
from gateway.store import outbox
from gateway.store.outbox import Delivery, DeliveryKind
from gateway.support.config import SinkConfig, parse_config
from tests.conftest import gateway_config, raw_config
from tests.open311_server import Open311Server
from tests.test_forwarding import running, submission, submit

API_KEY = "test-open311-key"
KEY_ENV = "MINSHENG_TEST_OPEN311_KEY"
JURISDICTION = "qingdao.example"
CASE: dict[str, Any] = {
    "case_code": "CY20261204000001", "subject": "夜间施工噪音", "body": "工地夜间施工，噪音很大。",
    "category_hint": "noise",
    "reporter": {"name": "黄女士", "phone": "+8613800138000", "email": "huang@example.cn",
                 "anonymous": False, "reply_wanted": True},
    "location": {"address": "城阳区正阳路", "latitude": 36.3, "longitude": 120.4},
    "attachments": [
        {"file_name": "a.txt", "media_type": "text/plain", "size": 3,
         "storage_ref": "https://gw.example/v1/attachments/aa"},
        {"file_name": "b.jpg", "media_type": "image/jpeg", "size": 3,
         "storage_ref": "https://gw.example/v1/attachments/bb"},
    ],
}


def options(url: str = "https://city.example/open311/v2", **extra: Any) -> dict[str, Any]:
    return {"url": url, "api_key": API_KEY, "jurisdiction_id": JURISDICTION,
            "service_code_map": {"noise": "001"}, "default_service_code": "002", **extra}


def delivery(kind: DeliveryKind = "case", case: dict[str, Any] = CASE) -> Delivery:
    return Delivery(1, "city", kind, str(case["case_code"]), json.dumps(case), 0, time.time())


@pytest.fixture
async def endpoint() -> AsyncIterator[Open311Server]:
    server = Open311Server(API_KEY, JURISDICTION)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def sink(endpoint: Open311Server) -> AsyncIterator[Open311Sink]:
    s = Open311Sink(SinkConfig(name="city", kind="open311"), options(endpoint.url))
    await s.start()
    try:
        yield s
    finally:
        await s.close()


# -- the form ------------------------------------------------------------------------------


def test_form_carries_code_location_contact_and_the_first_photo() -> None:
    form = request_form(Open311Options.model_validate(options()), CASE)
    assert form == {
        "api_key": API_KEY, "jurisdiction_id": JURISDICTION, "service_code": "001",
        "description": "夜间施工噪音\n\n工地夜间施工，噪音很大。",
        "address_string": "城阳区正阳路", "lat": "36.3", "long": "120.4",
        "last_name": "黄女士", "phone": "+8613800138000", "email": "huang@example.cn",
        "media_url": "https://gw.example/v1/attachments/bb",
    }


@pytest.mark.parametrize("reporter", [{"name": "Ann Lee", "phone": "+1", "anonymous": True},
                                      {"name": "Ann Lee", "phone": "+1", "reply_wanted": False}])
def test_no_contact_unless_the_citizen_asked_for_an_answer(reporter: dict[str, Any]) -> None:
    form = request_form(Open311Options.model_validate(options()), {**CASE, "reporter": reporter})
    assert not {"first_name", "last_name", "phone", "email"} & form.keys()


def test_a_western_name_is_split_and_an_unmapped_category_takes_the_default() -> None:
    case = {**CASE, "category_hint": "roads", "reporter": {"name": "Ann Marie Lee"}}
    form = request_form(Open311Options.model_validate(options()), case)
    assert (form["first_name"], form["last_name"]) == ("Ann Marie", "Lee")
    assert form["service_code"] == "002"


def test_no_service_code_is_a_dead_letter() -> None:
    no_default = Open311Options.model_validate(options(default_service_code=None))
    with pytest.raises(PermanentSinkError, match="service_code"):
        request_form(no_default, {**CASE, "category_hint": None})


def test_answers_map_to_delivered_retry_or_dead_letter() -> None:
    assert read_answer(201, '[{"service_request_id": "7"}]') == "service_request_id=7"
    assert read_answer(200, '[{"token": "t-1"}]') == "token=t-1"
    with pytest.raises(PermanentSinkError, match="400: service_code not found"):
        read_answer(400, '[{"code": 400, "description": "service_code not found"}]')
    with pytest.raises(RetriableSinkError, match="503"):
        read_answer(503, '[{"code": 503, "description": "busy"}]')
    with pytest.raises(PermanentSinkError, match="without service_request_id"):
        read_answer(200, "[]")


def test_url_must_be_the_v2_base_and_the_key_not_empty() -> None:
    with pytest.raises(ValueError, match="url"):
        Open311Options.model_validate(options(url="https://city.example/open311"))
    with pytest.raises(ValueError, match="api_key"):
        Open311Options.model_validate(options(api_key=""))


# -- against the endpoint ------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["id", "token"])
async def test_each_accepting_answer_counts_as_delivered(
    endpoint: Open311Server, sink: Open311Sink, shape: str
) -> None:
    endpoint.answer_with = shape
    assert await sink.deliver([delivery()]) == [None]
    assert endpoint.received[0]["service_code"] == "001"


async def test_refusals_and_outages(endpoint: Open311Server, sink: Open311Sink) -> None:
    [refused] = await sink.deliver([delivery(case={**CASE, "location": None})])
    assert isinstance(refused, PermanentSinkError)
    assert "lat/long or address_string required" in str(refused)
    endpoint.answer_with = "503"
    [later] = await sink.deliver([delivery()])
    assert isinstance(later, RetriableSinkError)
    assert endpoint.received == []


async def test_an_update_is_not_posted_again(endpoint: Open311Server, sink: Open311Sink) -> None:
    assert await sink.deliver([delivery("update"), delivery("event")]) == [None, None]
    assert endpoint.received == []


async def test_connection_check(endpoint: Open311Server) -> None:
    good = Open311Sink(SinkConfig(name="city", kind="open311"), options(endpoint.url))
    assert (await good.check_connection()).state == "ok"
    wrong = Open311Sink(SinkConfig(name="city", kind="open311"),
                        options(endpoint.url, jurisdiction_id="elsewhere"))
    check = await wrong.check_connection()
    assert check.state == "failed" and "404" in check.detail


async def test_a_case_reaches_the_endpoint_end_to_end(
    tmp_path: Path, store_url: str, endpoint: Open311Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    sink_config = {"name": "city", "kind": "open311", "poll_interval_s": 0.2,
                   **options(endpoint.url, api_key=f"${{{KEY_ENV}}}")}
    async with running(gateway_config(tmp_path, store_url, sinks=[sink_config])) as gw:
        [code] = await submit(gw, [submission(1, "open311")])
        await _wait_delivered(gw)
    [form] = endpoint.received
    assert form["api_key"] == API_KEY and form["jurisdiction_id"] == JURISDICTION
    assert form["service_code"] == "002" and form["address_string"] == "城阳区正阳路"
    assert "共享单车" in form["description"] and form["last_name"] == "黄女士"
    assert code.startswith("CY")


async def _wait_delivered(gw: Gateway) -> None:
    for _ in range(300):
        stats = (await gw.store.read(lambda tx: outbox.stats(tx))).get("city", {})
        if stats.get("delivered"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the case never reached the Open311 endpoint")


async def test_check_config_connect_lists_the_sink(tmp_path: Path, endpoint: Open311Server,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    sink_config = {"name": "city", "kind": "open311", **options(endpoint.url,
                                                                 api_key=f"${{{KEY_ENV}}}")}
    raw = raw_config(tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", sinks=[sink_config])
    results = dict(await check_connections(parse_config(raw), 5.0))
    [line] = [result for target, result in results.items() if target.startswith("sinks.city")]
    assert line.state == "ok" and "2 services" in line.detail
