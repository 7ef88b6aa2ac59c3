"""The status API on both engines, over real HTTP: a case platform posts statuses back,
the history shows in ``GET /v1/cases/{code}``, repeats are the same entry, hostile bodies
are refused naming the field, and the accept-delay histogram counts in ``/metrics``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.model.case_status import parse_update
from gateway.model.errors import Rejected
from gateway.server.app import Gateway
from gateway.store import Store, cases, statuses
from gateway.store.migrations import MIGRATIONS
from tests.conftest import base_url

AUTH = {"Authorization": "Bearer test-api-token"}
FORM = {"name": "黄女士", "phone": "13800138000", "content": "小区门口垃圾三天未清运"}


async def file_case(client: httpx.AsyncClient, content: str = FORM["content"]) -> str:
    response = await client.post("/intake/web", json={**FORM, "content": content})
    assert response.status_code == 202, response.text
    code: str = response.json()["case_code"]
    return code


async def post_status(client: httpx.AsyncClient, code: str, body: Any,
                      headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return await client.post(f"/v1/cases/{code}/status", content=content,
                             headers={"Content-Type": "application/json",
                                      **(AUTH if headers is None else headers)})


async def test_history_repeats_and_the_case_document(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        code = await file_case(client)
        before = (await client.get(f"/v1/cases/{code}", headers=AUTH)).content
        accepted = await post_status(client, code.lower(),
                                     {"status": "accepted", "at": "2026-12-04T09:00:00+08:00"})
        assigned = {"status": "assigned", "department": "城管局",
                    "at": "2026-12-04T10:00:00+08:00"}
        first = await post_status(client, code, assigned)
        again = await post_status(client, code, {**assigned, "department": "另一个部门"})
        same_instant = await post_status(client, code, {**assigned,
                                                        "at": "2026-12-04T02:00:00Z"})
        replied = await post_status(client, code, {"status": "replied", "text": "已清运",
                                                   "at": "2026-12-05T10:00:00+08:00",
                                                   "category": "城乡建设"})
        case = await client.get(f"/v1/cases/{code}", headers=AUTH)
    assert accepted.status_code == 201 and accepted.json()["case_code"] == code
    assert first.status_code == 201
    assert again.status_code == 200 and again.json() == first.json()  # the stored entry
    assert same_instant.status_code == 200 and same_instant.json() == first.json()
    assert replied.status_code == 201
    assert first.json() == {"case_code": code, "status": "assigned",
                            "at": "2026-12-04T10:00:00+08:00", "department": "城管局",
                            "text": None, "category": None, "origin": "api"}
    history = case.json()["status_history"]
    assert [e["status"] for e in history] == ["accepted", "assigned", "replied"]
    assert history[2]["category"] == "城乡建设"
    # The document's own bytes are untouched; the history is added at its end.
    assert case.content.startswith(before[:before.rindex(b',"status_history"')])
    assert json.loads(before)["status_history"] == []
    assert case.json()["body"] == FORM["content"]


async def test_refusals_name_the_field(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        code = await file_case(client)
        missing = await post_status(client, "CY-20191120-W-999999-0",
                                    {"status": "closed", "at": "2026-12-04T10:00:00+08:00"})
        several = await post_status(client, code, {"status": "assigned", "at": "2026-12-04",
                                                   "colour": "red"})
        unknown = await post_status(client, code, {"status": "finished",
                                                   "at": "2026-12-04T10:00:00+08:00"})
        replied = await post_status(client, code, {"status": "replied",
                                                   "at": "2026-12-04T10:00:00+08:00"})
        duplicate = await post_status(
            client, code, b'{"status": "closed", "status": "accepted", "at": "2026-12-04"}')
        not_json = await post_status(client, code, b"status=closed")
        nan = await post_status(client, code, b'{"status": NaN}')
        array = await post_status(client, code, [1, 2])
        big = await post_status(client, code, {"status": "replied", "text": "长" * 70_000,
                                               "at": "2026-12-04T10:00:00+08:00"})
        no_token = await post_status(client, code, {"status": "closed"}, headers={})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert several.status_code == 422
    assert {e["field"] for e in several.json()["errors"]} == {"at", "department", "colour"}
    assert "带时区" in several.text and "with its offset" in several.text
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "status"
    assert [e["field"] for e in replied.json()["errors"]] == ["text"]
    assert duplicate.status_code == 422 and "status" in duplicate.text
    assert not_json.status_code == 422 and not_json.json()["errors"][0]["field"] == "body"
    assert nan.status_code == 422
    assert array.status_code == 422 and array.json()["errors"][0]["code"] == "not_an_object"
    assert big.status_code == 413
    assert no_token.status_code == 401
    for answer in (several, unknown, replied, duplicate, not_json, nan, array, big):
        assert answer.headers["content-type"].startswith("application/problem+json")


async def test_accept_delay_histogram(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        code = await file_case(client)
        created = await gateway.store.read(lambda tx: tx.fetchone(
            "SELECT created_at FROM cases WHERE case_code = ?", (code,))[0])
        at = datetime.fromtimestamp(created, UTC) + timedelta(minutes=10)
        for minutes in (0, 30):  # a second "accepted" later does not count again
            await post_status(client, code, {"status": "accepted",
                                             "at": (at + timedelta(minutes=minutes)).isoformat()})
        one = (await client.get("/metrics")).text
        # Another case, whose "accepted" the platform's clock puts before its intake.
        early = await file_case(client, "另一件事：路灯不亮")
        await post_status(client, early, {"status": "accepted",
                                          "at": (at - timedelta(hours=1)).isoformat()})
        two = (await client.get("/metrics")).text
    assert 'minsheng_case_accept_delay_seconds_bucket{le="300"} 0.0' in one
    assert 'minsheng_case_accept_delay_seconds_bucket{le="900"} 1.0' in one
    assert "minsheng_case_accept_delay_seconds_count 1.0" in one
    assert 'minsheng_case_accept_delay_seconds_bucket{le="60"} 1.0' in two  # counted as 0 s
    assert "minsheng_case_accept_delay_seconds_count 2.0" in two
    [total] = [line.split()[1] for line in two.splitlines()
               if line.startswith("minsheng_case_accept_delay_seconds_sum")]
    assert float(total) == pytest.approx(600, abs=0.01)  # `at` has microseconds only


async def test_store_queries(store: Store) -> None:
    """``closed_among`` follows reopenings; ``final_categories`` takes the latest."""
    def fill(tx: Any) -> None:
        for n, code in enumerate(("CY-A", "CY-B", "CY-C")):
            cases.insert(tx, case_code=code, source="t", source_ref=str(n), channel="web",
                         raw_id=n + 1, document=json.dumps({"subject": f"主题{n}",
                                                            "body": f"内容{n}"}))
        for code, status, at, category in [
            ("CY-A", "closed", "2026-12-01T10:00:00+08:00", "甲"),
            ("CY-B", "closed", "2026-12-01T10:00:00+08:00", None),
            ("CY-B", "reopened", "2026-12-02T10:00:00+08:00", None),
            ("CY-C", "accepted", "2026-12-01T10:00:00+08:00", "乙"),
            ("CY-C", "replied", "2026-12-02T10:00:00+08:00", "丙"),
        ]:
            update = parse_update({"status": status, "at": at, "category": category,
                                   "text": "答复" if status == "replied" else None})
            assert statuses.record_for_code(tx, code, update, "api") is not None

    await store.write(fill)
    closed = await store.read(lambda tx: statuses.closed_among(tx, ["CY-A", "CY-B", "CY-C"]))
    finals = await store.read(statuses.final_categories)
    missing = await store.read(lambda tx: statuses.missing_codes(tx, ["CY-A", "CY-Z"]))
    assert closed == {"CY-A"}
    assert [(code, category) for code, _, category in finals] == [("CY-A", "甲"),
                                                                  ("CY-C", "丙")]
    assert missing == {"CY-Z"}
    assert "case statuses" in [name for _, name, _ in MIGRATIONS]


@pytest.mark.parametrize("body", [
    {"status": "assigned", "department": "城管局", "at": "2026-12-04T10:00:00+08:00"},
    {"status": "closed", "at": "2026-12-04T10:00:00.123456-05:00", "category": "x"},
])
def test_parse_update_accepts(body: dict[str, str]) -> None:
    update = parse_update(body)
    assert update.status == body["status"] and update.at.utcoffset() is not None


def test_parse_update_one_reason_per_field() -> None:
    with pytest.raises(Rejected) as caught:
        parse_update({"status": 5, "at": 7, "text": "\x00", "category": "长" * 201})
    assert [(e.field, e.code) for e in caught.value.errors] == [
        ("status", "not_a_string"), ("at", "not_a_string"), ("text", "bad_characters"),
        ("category", "too_long")]
