"""The web mailbox through the real HTTP endpoint, on both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from gateway.server.app import Gateway
from tests.conftest import base_url, sink_lines

SUBMISSION = {
    "name": "黄女士", "phone": "13800138000", "subject": "共享单车乱停放",
    "content": "小区门口共享单车堆放严重，影响通行。", "address": "城阳区正阳路",
}


async def test_new_then_replay_by_idempotency_key(gateway: Gateway, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        first = await client.post("/intake/web", json=SUBMISSION,
                                  headers={"Idempotency-Key": "k-1"})
        again = await client.post("/intake/web", json=SUBMISSION,
                                  headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 202
    assert first.json()["outcome"] == "new"
    assert again.status_code == 200
    assert again.json() == {"outcome": "replay", "case_code": first.json()["case_code"]}
    lines = await sink_lines(tmp_path / "cases.jsonl", 1, timeout=5)
    await asyncio.sleep(0.5)  # a second forward would show up by now
    lines = await sink_lines(tmp_path / "cases.jsonl", 1, timeout=5)
    assert [line["case_code"] for line in lines] == [first.json()["case_code"]]
    assert lines[0]["reporter"]["phone"] == "+8613800138000"  # type: ignore[index]


async def test_rejection_names_every_field_and_stores_no_case(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        response = await client.post(
            "/intake/web", json={"name": "张" * 60, "phone": "1380013", "content": ""}
        )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    fields = {e["field"]: e["code"] for e in problem["errors"]}
    assert fields == {"name": "too_long", "phone": "invalid_phone", "content": "required"}
    for error in problem["errors"]:
        assert error["zh"] and error["en"] and error["en"] in error["reason"]
    counts = await gateway.store.read(
        lambda tx: tx.fetchone("SELECT (SELECT COUNT(*) FROM cases), (SELECT COUNT(*) FROM "
                               "outbox), (SELECT COUNT(*) FROM raw_records WHERE status = "
                               "'rejected')")
    )
    assert tuple(counts) == (0, 0, 1)


async def test_contact_required_unless_anonymous(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        named = await client.post("/intake/web", json={"name": "李", "content": "噪音扰民"})
        anonymous = await client.post(
            "/intake/web", json={"anonymous": True, "content": "噪音扰民"}
        )
    assert named.status_code == 422
    assert named.json()["errors"][0]["code"] == "contact_required"
    assert anonymous.status_code == 202


async def test_body_that_is_not_json_form_or_multipart(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        plain = await client.post("/intake/web", content=b"hello",
                                  headers={"content-type": "text/plain"})
        broken = await client.post("/intake/web", content=b"{not json",
                                   headers={"content-type": "application/json"})
    assert plain.status_code == 422
    assert plain.json()["errors"][0]["code"] == "unsupported_media_type"
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["field"] == "body"


async def test_urlencoded_form_and_submission_id_replay(gateway: Gateway) -> None:
    form = {"name": "王先生", "phone": "0532-88886666", "content": "路灯不亮",
            "submission_id": "F-2019-0001"}
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        first = await client.post("/intake/web", data=form)
        second = await client.post("/intake/web", data=form)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["case_code"] == first.json()["case_code"]


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_multipart_attachments_are_kept_by_content(gateway: Gateway, tmp_path: Path) -> None:
    files = [
        ("photo", ("../../现场照片.png", PNG, "image/png")),
        ("photo2", ("same.png", PNG, "image/png")),
    ]
    data = {"name": "赵", "phone": "13900139000", "content": "垃圾未清运"}
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        response = await client.post("/intake/web", data=data, files=files)
    assert response.status_code == 202, response.text
    code = response.json()["case_code"]
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        case = (await client.get(f"/v1/cases/{code}",
                                 headers={"Authorization": "Bearer test-api-token"})).json()
    names = [a["file_name"] for a in case["attachments"]]
    assert names == ["现场照片.png", "same.png"]
    digest = case["attachments"][0]["sha256"]
    assert case["attachments"][1]["sha256"] == digest
    stored = tmp_path / "var" / "attachments" / digest[:2] / digest[2:]
    assert stored.read_bytes() == PNG


async def test_multipart_limits(gateway: Gateway) -> None:
    data = {"name": "赵", "phone": "13900139000", "content": "垃圾未清运"}
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        wrong_type = await client.post(
            "/intake/web", data=data, files=[("f", ("x.exe", b"MZ", "application/x-msdownload"))]
        )
        fake_png = await client.post(
            "/intake/web", data=data, files=[("f", ("x.png", b"GIF89a", "image/png"))]
        )
        too_many = await client.post(
            "/intake/web", data=data,
            files=[(f"f{i}", (f"{i}.txt", b"hi", "text/plain")) for i in range(6)],
        )
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["code"] == "media_type_not_allowed"
    assert fake_png.json()["errors"][0]["code"] == "media_type_mismatch"
    assert too_many.json()["errors"][0]["code"] == "too_many_files"
    cases = await gateway.store.read(lambda tx: tx.fetchone("SELECT COUNT(*) FROM cases"))
    assert cases[0] == 0


async def test_rejected_multipart_keeps_no_files(gateway: Gateway, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        response = await client.post(
            "/intake/web", data={"name": "赵", "phone": "13900139000", "content": ""},
            files=[("photo", ("a.png", PNG, "image/png"))],
        )
    assert response.status_code == 422
    stored = tmp_path / "var" / "attachments"
    assert not stored.exists() or not any(p.is_file() for p in stored.rglob("*"))
