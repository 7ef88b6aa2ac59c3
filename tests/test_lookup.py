"""The look-up by case code on both engines, over real HTTP: the right digits show the
history (statuses posted through the status API included) and nothing personal; wrong
digits, an unknown code and a case without a phone get one identical answer; the e-mail
variant; both rate limits; refusals naming the field; the page without a browser (the
plain form post a browser without JavaScript sends); rows of cases filed before the
look-up existed filled at start-up; the digits never stored in clear; a phone case."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import lxml.html
import pytest

from gateway.model.casecode import format_code
from gateway.server.app import Gateway
from gateway.support.keyed_ids import IdentifierKeys, IdKind
from gateway.support.web_page import CSP
from tests.conftest import base_url, gateway_config
from tests.fixtures.cdr import read, running
from tests.fixtures.cdr import source as phone_source
from tests.fixtures.cdr import url as phone_url

AUTH = {"Authorization": "Bearer test-api-token"}
FORM = {"name": "黄女士", "phone": "13800138000", "email": "Huang.NV@Example.CN",
        "address": "城阳区正阳路 88 号", "content": "小区门口垃圾三天未清运，气味很大。"}
REPLY = "已联系黄女士，电话 13800138000，垃圾已清运。"  # the platform's text: never shown
PERSONAL = [FORM["name"], FORM["phone"], "138 0013 8000", FORM["email"].lower(),
            FORM["email"], FORM["address"], FORM["content"], REPLY, "黄"]
LOOKUP = {"per_code": {"burst": 50}}


def lookup_gateway(tmp_path: Path, store_url: str, lookup: dict[str, Any] | None = None,
                   **overrides: Any) -> Gateway:
    return Gateway(gateway_config(tmp_path, store_url, lookup=lookup or LOOKUP, **overrides))


@pytest.fixture
async def gw(tmp_path: Path, store_url: str) -> Any:
    gateway = lookup_gateway(tmp_path, store_url)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


async def file_case(client: httpx.AsyncClient, **fields: str) -> str:
    response = await client.post("/intake/web", json={**FORM, **fields})
    assert response.status_code == 202, response.text
    code: str = response.json()["case_code"]
    return code


async def ask(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await client.post("/v1/lookup", json=body)


def no_personal_data(text: str) -> None:
    for value in PERSONAL:
        assert value not in text, value


async def test_right_digits_show_the_history_and_nothing_personal(gw: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        code = await file_case(client)
        first = await ask(client, {"case_code": code, "phone_last4": "8000"})
        for status in ({"status": "accepted", "at": "2026-12-04T09:00:00+08:00"},
                       {"status": "assigned", "department": "城管局",
                        "at": "2026-12-04T10:00:00+08:00"},
                       {"status": "replied", "text": REPLY, "at": "2026-12-05T10:00:00+08:00"}):
            posted = await client.post(f"/v1/cases/{code}/status", json=status, headers=AUTH)
            assert posted.status_code == 201, posted.text
        later = await ask(client, {"case_code": code.lower(), "phone_last4": "８０００"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["case_code"] == code and body["channel"] == "web"
    assert (body["channel_zh"], body["channel_en"]) == ("网上信箱", "web mailbox")
    assert body["received_at"].endswith("+08:00")
    assert body["status_history"] == [{"status": "received", "label_zh": "已受理",
                                       "label_en": "received", "at": body["received_at"],
                                       "department": None}]
    assert later.status_code == 200, later.text
    history = later.json()["status_history"]
    assert [(e["status"], e["at"], e["department"]) for e in history] == [
        ("accepted", "2026-12-04T09:00:00+08:00", None),
        ("assigned", "2026-12-04T10:00:00+08:00", "城管局"),
        ("replied", "2026-12-05T10:00:00+08:00", None)]
    assert history[2]["label_zh"] == "已答复"
    no_personal_data(first.text)
    no_personal_data(later.text)


async def test_wrong_digits_unknown_code_and_no_phone_get_one_identical_answer(
        gw: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        code = await file_case(client)
        mail_only = await file_case(client, phone="", content="路灯不亮已经一周。")
        unknown = format_code("CY", date(2019, 11, 20), "web", 999_999)
        answers = [await ask(client, question) for question in (
            {"case_code": code, "phone_last4": "8001"},
            {"case_code": unknown, "phone_last4": "8000"},
            {"case_code": mail_only, "phone_last4": "8000"},
            {"case_code": code, "email": "someone.else@example.cn"},
        )]
    first = answers[0]
    assert first.status_code == 404
    assert first.headers["content-type"].startswith("application/problem+json")
    assert first.json()["type"].endswith("/no-match")
    assert "后四位" in first.json()["detail"] and "last four digits" in first.json()["detail"]
    for other in answers[1:]:
        assert (other.status_code, other.content) == (first.status_code, first.content)
        assert other.headers["content-type"] == first.headers["content-type"]
        assert other.headers.keys() - {"x-request-id", "date"} == \
            first.headers.keys() - {"x-request-id", "date"}


async def test_the_email_variant_is_case_insensitive(gw: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        code = await file_case(client, phone="")
        lower = await ask(client, {"case_code": code, "email": "  huang.nv@example.cn "})
        upper = await ask(client, {"case_code": code, "email": "HUANG.NV@EXAMPLE.CN"})
        by_phone = await ask(client, {"case_code": code, "phone_last4": "8000"})
    assert lower.status_code == 200 and upper.status_code == 200, lower.text
    assert lower.json() == upper.json()
    assert by_phone.status_code == 404
    no_personal_data(lower.text)


async def test_rate_limits_per_client_and_per_code(tmp_path: Path, store_url: str) -> None:
    """The tries a client and a code get (with workers the buckets are shared:
    tests/test_workers.py, tests/test_shared_buckets.py)."""
    limits = {"per_client": {"per_minute": 0.01, "burst": 4, "exempt": []},
              "per_code": {"per_minute": 0.01, "burst": 2}}
    gateway = lookup_gateway(tmp_path, store_url, limits)
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
            code = await file_case(client)  # intake has its own limit, loopback exempt
            other = format_code("CY", date(2019, 11, 20), "web", 1)
            third = format_code("CY", date(2019, 11, 20), "web", 2)
            answers = [await ask(client, {"case_code": c, "phone_last4": "8000"})
                       for c in (code, code, code, other, third)]
    finally:
        await gateway.stop()
    assert [a.status_code for a in answers] == [200, 200, 429, 404, 429]
    for refused in (answers[2], answers[4]):  # per code, then per client
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["Retry-After"]) >= 1
        assert "查询过于频繁" in refused.json()["title"]


@pytest.mark.parametrize(("body", "field", "code"), [
    ({"phone_last4": "8000"}, "case_code", "required"),
    ({"case_code": "CY-20191120-W-000123-8", "phone_last4": "8000"}, "case_code", "invalid"),
    ({"case_code": "XX-20191120-W-000123-7", "phone_last4": "8000"}, "case_code", "invalid"),
    ({"case_code": "CY-20191120-W-000123-7"}, "phone_last4", "required"),
    ({"case_code": "CY-20191120-W-000123-7", "phone_last4": "80001"}, "phone_last4",
     "four_digits"),
    ({"case_code": "CY-20191120-W-000123-7", "phone_last4": "8000", "email": "a@b.cn"},
     "email", "one_of"),
    ({"case_code": "CY-20191120-W-000123-7", "email": "not-an-address"}, "email", "invalid"),
    ({"case_code": "CY-20191120-W-000123-7", "phone_last4": 8000}, "phone_last4", "not_text"),
    ({"case_code": "CY-20191120-W-000123-7", "phone_last4": "8000", "name": "x"}, "name",
     "unknown_field"),
    (["CY-20191120-W-000123-7"], "body", "not_object"),
])
async def test_refusals_name_the_field(gw: Gateway, body: Any, field: str, code: str) -> None:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        answer = await ask(client, body)
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert (errors[0]["field"], errors[0]["code"]) == (field, code), errors
    assert errors[0]["zh"] and errors[0]["en"]


async def test_body_limits(gw: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        big = await client.post("/v1/lookup", content=b'{"case_code": "' + b"A" * 8000 + b'"}',
                                headers={"Content-Type": "application/json"})
        junk = await client.post("/v1/lookup", content=b"\xff{",
                                 headers={"Content-Type": "application/json"})
        twice = await client.post("/v1/lookup", content=b'{"email": "a@b.cn", "email": "c"}',
                                  headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["errors"][0]["field"] == "body"
    assert junk.status_code == 422 and junk.json()["errors"][0]["code"] == "not_json"
    assert twice.status_code == 422


def page_form(html: str) -> dict[str, str]:
    doc = lxml.html.fromstring(html)
    form = doc.get_element_by_id("lookup")
    return {i.get("name"): i.get("value") or "" for i in form.iter("input")}


def without_token(html: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]*"', "", html)


async def test_the_page_without_javascript(gw: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        code = await file_case(client)
        page = await client.get("/lookup", params={"case_code": code})
        fields = page_form(page.text)
        right = await client.post("/lookup", data={**fields, "phone_last4": "8000"})
        wrong = await client.post("/lookup", data={**fields, "phone_last4": "8001"})
        unknown = await client.post("/lookup", data={
            **fields, "case_code": format_code("CY", date(2019, 11, 20), "web", 7),
            "phone_last4": "8000"})
        unknown_again = await client.post("/lookup", data={
            **fields, "case_code": format_code("CY", date(2019, 11, 20), "web", 7),
            "phone_last4": "1234"})
        stale = await client.post("/lookup", data={**fields, "csrf_token": "1.00",
                                                   "phone_last4": "8000"})
        empty = await client.post("/lookup", data={"csrf_token": fields["csrf_token"]})
        script = await client.get("/lookup/static/lookup.js")
        style = await client.get("/lookup/static/page.css")
        missing = await client.get("/lookup/static/..%2Flookup.py")
    assert page.status_code == 200 and page.headers["Content-Security-Policy"] == CSP
    assert fields["case_code"] == code and fields["csrf_token"]
    assert right.status_code == 200 and right.headers["content-type"].startswith("text/html")
    doc = lxml.html.fromstring(right.text)
    assert doc.get_element_by_id("case-code").text_content() == code
    assert "已受理" in doc.get_element_by_id("history").text_content()
    no_personal_data(right.text)
    assert "8000" not in right.text
    assert wrong.status_code == 404 and "no-match" in wrong.text
    assert "8001" not in wrong.text  # what was typed is not shown back, but the code
    assert unknown.status_code == 404
    assert without_token(unknown.text) == without_token(unknown_again.text)
    assert stale.status_code == 403 and 'id="err-csrf_token"' not in stale.text
    assert "页面已过期" in stale.text
    assert empty.status_code == 422
    errors = lxml.html.fromstring(empty.text)
    assert "请填写案件编号" in errors.get_element_by_id("err-case_code").text_content()
    assert errors.get_element_by_id("f-case_code").get("aria-invalid") == "true"
    assert script.status_code == 200 and style.status_code == 200
    assert missing.status_code == 404


async def test_digests_only_and_rows_filled_at_start_up(tmp_path: Path, store_url: str) -> None:
    key = {"identifier_key": "a" * 64}
    gateway = lookup_gateway(tmp_path, store_url, privacy=key)
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
            code = await file_case(client)
        row = await gateway.store.read(lambda tx: tx.fetchone(
            "SELECT * FROM case_lookup WHERE case_code = ?", (code,)))
        # A case filed before migration 8 had no row: take it away again.
        await gateway.store.write(lambda tx: tx.execute("DELETE FROM case_lookup"))
    finally:
        await gateway.stop()
    # The row holds the keyed digests, nothing else of the citizen.
    keys = IdentifierKeys(bytes.fromhex("a" * 64))
    assert tuple(row[1:3]) == (code, "web")
    assert row[4] == keys.digest(IdKind.PHONE_LAST4, "8000", scope=code)
    assert row[5] == keys.digest(IdKind.EMAIL, FORM["email"].lower(), scope=code)
    # Restarted with a new key, the old one still accepted: the rows come back under
    # the new key, and a look-up matches.
    rotated = {"identifier_key": "b" * 64, "previous_identifier_keys": ["a" * 64]}
    gateway = lookup_gateway(tmp_path, store_url, privacy=rotated)
    await gateway.start()
    try:
        filled = await gateway.store.read(lambda tx: tx.fetchone(
            "SELECT phone_last4, email FROM case_lookup WHERE case_code = ?", (code,)))
        async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
            found = await ask(client, {"case_code": code, "phone_last4": "8000"})
            by_mail = await ask(client, {"case_code": code, "email": FORM["email"]})
    finally:
        await gateway.stop()
    assert filled is not None and filled[0] != row[4] and filled[1] is not None
    assert found.status_code == 200 and by_mail.status_code == 200


async def test_a_case_from_the_phone_channel_flow(tmp_path: Path, store_url: str) -> None:
    hotline = phone_source("hotline", "generic_json")
    async with running(tmp_path, store_url, hotline) as gw, \
            httpx.AsyncClient(base_url=phone_url(gw)) as client:
        filed = await client.post("/intake/hotline", json=json.loads(read("generic_answered.json")))
        code = filed.json()["case_code"]
        found = await ask(client, {"case_code": code, "phone_last4": "6655"})
        wrong = await ask(client, {"case_code": code, "phone_last4": "6656"})
    assert found.status_code == 200, found.text
    assert found.json()["channel"] == "phone"
    assert wrong.status_code == 404
    assert "李先生" not in found.text and "8776655" not in found.text


async def test_turned_off(tmp_path: Path) -> None:
    gateway = lookup_gateway(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", {"enabled": False})
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
            code = await file_case(client)
            api = await ask(client, {"case_code": code, "phone_last4": "8000"})
            page = await client.get("/lookup")
            document = (await client.get("/openapi.json")).json()
        rows = await gateway.store.read(lambda tx: tx.fetchone(
            "SELECT COUNT(*) FROM case_lookup"))
    finally:
        await gateway.stop()
    assert api.status_code == 404 and page.status_code == 404
    assert not [p for p in document["paths"] if "lookup" in p]
    assert rows[0] == 1  # still written: turning it on again needs no backfill
