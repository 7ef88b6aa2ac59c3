"""The phone channel in our own generic_json, through the real HTTP endpoint, on both
engines: one case per call, replays, notes before and after the call record, missed-call
callbacks, bad input, size limit and HMAC/bearer authentication."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from adapters.cdr_webhook import PARSERS
from gateway.cli import main
from gateway.store import quarantine
from tests.conftest import sink_lines
from tests.fixtures.cdr import case, generic, read, running, scalar, sign_hmac
from tests.fixtures.cdr import source as phone_source
from tests.fixtures.cdr import url as base
from tests.procs import write_config

HOTLINE = phone_source("hotline", "generic_json", missed_calls="callback")
COUNTED = phone_source("counted", "generic_json")  # missed_calls: count (the default)


@pytest.fixture
async def client(tmp_path: Path, store_url: str):  # type: ignore[no-untyped-def]
    async with running(tmp_path, store_url, HOTLINE, COUNTED) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as http:
        http.gateway = gw  # type: ignore[attr-defined]
        yield http


async def test_answered_call_with_notes_is_one_phone_case(client: httpx.AsyncClient,
                                                          tmp_path: Path) -> None:
    record = json.loads(read("generic_answered.json"))
    first = await client.post("/intake/hotline", json=record)
    again = await client.post("/intake/hotline", json=record)
    assert first.status_code == 202, first.text
    code = first.json()["case_code"]
    assert first.json()["outcome"] == "new" and "-P-" in code
    assert again.status_code == 200
    assert again.json()["outcome"] == "replay" and again.json()["case_code"] == code
    complaint = await case(client.gateway, client, code)  # type: ignore[attr-defined]
    call = complaint["call"]
    assert (call["ring_seconds"], call["talk_seconds"]) == (9, 328)
    assert call["agent"] == "工号1024" and call["disposition"] == "answered"
    assert call["recording_ref"].endswith("hl-20240506-0042.mp3")
    assert call["started_at"] == "2024-05-06T02:02:11Z"
    assert complaint["channel"] == "phone" and complaint["subject"] == "夜间施工噪音扰民"
    assert complaint["reporter"] == {
        "name": "李先生", "phone": "+8653288776655", "email": None, "handle": None,
        "anonymous": False, "reply_wanted": True}
    assert complaint["location"]["address"] == "城阳区春阳路与长城路交叉口工地"
    lines = await sink_lines(tmp_path / "cases.jsonl", 1)
    assert [line["case_code"] for line in lines] == [code]


async def test_notes_before_the_call_record(client: httpx.AsyncClient) -> None:
    notes = json.loads(read("notes.json"))
    record = generic("generic_answered.json", call_id="hl-notes-first", notes=None)
    early = await client.post("/intake/hotline/calls/hl-notes-first/notes", json=notes)
    assert early.status_code == 202
    assert early.json() == {"outcome": "recorded", "call_id": "hl-notes-first",
                            "call_status": "ringing", "waiting_for": "call"}
    filed = await client.post("/intake/hotline", json=record)
    assert filed.status_code == 202 and filed.json()["outcome"] == "new"
    complaint = await case(client.gateway, client, filed.json()["case_code"])  # type: ignore
    assert complaint["subject"] == "燃气表不走字"
    assert complaint["reporter"]["name"] == "赵女士"
    assert complaint["category_hint"] == "公用事业/燃气"
    assert complaint["call"]["ring_seconds"] == 9


async def test_notes_after_the_call_record_and_a_correction(client: httpx.AsyncClient,
                                                            tmp_path: Path) -> None:
    record = generic("generic_answered.json", call_id="hl-notes-late", notes=None)
    waiting = await client.post("/intake/hotline", json=record)
    assert waiting.status_code == 202
    assert waiting.json()["outcome"] == "recorded"
    assert waiting.json()["waiting_for"] == "notes"
    notes = json.loads(read("notes.json"))
    filed = await client.post("/intake/hotline/calls/hl-notes-late/notes", json=notes)
    repeated = await client.post("/intake/hotline/calls/hl-notes-late/notes", json=notes)
    code = filed.json()["case_code"]
    assert (filed.status_code, filed.json()["outcome"]) == (202, "new")
    assert (repeated.status_code, repeated.json()["outcome"]) == (200, "replay")
    assert repeated.json()["case_code"] == code
    fixed = await client.post("/intake/hotline/calls/hl-notes-late/notes",
                              data={**notes, "subject": "燃气表计量异常"})  # form-encoded too
    assert (fixed.status_code, fixed.json()["outcome"]) == (200, "updated")
    assert fixed.json()["case_code"] == code
    lines = await sink_lines(tmp_path / "cases.jsonl", 2)
    assert [line["case_code"] for line in lines] == [code, code]
    assert lines[-1]["subject"] == "燃气表计量异常"


async def test_missed_call_becomes_a_callback_or_is_counted(client: httpx.AsyncClient) -> None:
    record = json.loads(read("generic_missed.json"))
    callback = await client.post("/intake/hotline", json=record)
    counted = await client.post("/intake/counted", json=record)
    assert callback.status_code == 202 and callback.json()["outcome"] == "new"
    complaint = await case(client.gateway, client, callback.json()["case_code"])  # type: ignore
    assert complaint["subject"].startswith("回拨")
    assert complaint["reporter"]["phone"] == "+8613705321234"
    assert "+8613705321234" in complaint["body"]
    assert complaint["tags"] == ["callback", "abandoned"]
    assert complaint["call"]["started_at"] == "2024-05-06T02:05:00Z"  # naive: local time
    assert counted.status_code == 202
    assert counted.json() == {"outcome": "recorded", "call_id": "hl-20240506-0043",
                              "call_status": "missed"}
    gw = client.gateway  # type: ignore[attr-defined]
    assert await scalar(gw, "SELECT COUNT(*) FROM cases") == 1
    assert await scalar(gw, "SELECT COUNT(*) FROM calls WHERE status = 'missed'") == 2


@pytest.mark.parametrize(("body", "content_type", "field", "code"), [
    (b"{not json", "application/json", "body", "not_json"),
    (b"[1, 2]", "application/json", "body", "not_object"),
    (json.dumps({"started_at": "2024-05-06T10:00:00+08:00",
                 "ended_at": "2024-05-06T10:01:00+08:00"}).encode(), "application/json",
     "call_id", "required"),
    (read("generic_ended_before_started.json"), "application/json", "ended_at",
     "ended_before_started"),
    (json.dumps({"call_id": "x", "started_at": "yesterday", "ended_at": "2024-05-06"}).encode(),
     "application/json", "started_at", "invalid_time"),
    (json.dumps({"call_id": "x", "started_at": "2024-05-06T10:00:00",
                 "ended_at": "2024-05-06T10:01:00", "disposition": "hung"}).encode(),
     "application/json", "disposition", "unknown_disposition"),
])
async def test_bad_input_names_field_and_reason_and_is_stable(
    client: httpx.AsyncClient, body: bytes, content_type: str, field: str, code: str,
) -> None:
    headers = {"content-type": content_type}
    first = await client.post("/intake/hotline", content=body, headers=headers)
    retry = await client.post("/intake/hotline", content=body, headers=headers)
    assert first.status_code == 422
    assert first.headers["content-type"].startswith("application/problem+json")
    assert (field, code) in {(e["field"], e["code"]) for e in first.json()["errors"]}
    assert all(e["zh"] and e["en"] for e in first.json()["errors"])
    assert (retry.status_code, retry.content) == (first.status_code, first.content)
    gw = client.gateway  # type: ignore[attr-defined]
    assert await scalar(gw, "SELECT COUNT(*) FROM raw_records WHERE status = 'rejected'") == 2
    assert await scalar(gw, "SELECT COUNT(*) FROM calls") == 0


async def test_notes_without_content_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/intake/hotline/calls/c-1/notes",
                                 json={"subject": "无内容", "phone": "12"})
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"content", "phone"}


async def test_body_over_the_limit(tmp_path: Path, store_url: str) -> None:
    small = phone_source("small", "generic_json", max_body_kb=1)
    record = generic("generic_answered.json")
    record["notes"]["content"] = "很长的内容" * 300
    async with running(tmp_path, store_url, small) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as client:
        response = await client.post("/intake/small", json=record)
        async def stream() -> AsyncIterator[bytes]:  # no Content-Length: chunked
            yield json.dumps(record).encode()

        chunked = await client.post("/intake/small", content=stream(),
                                    headers={"content-type": "application/json"})
        assert await scalar(gw, "SELECT COUNT(*) FROM raw_records") == 0
    for answer in (response, chunked):
        assert answer.status_code == 413
        assert answer.json()["errors"][0]["field"] == "body"
        assert answer.json()["errors"][0]["code"] == "too_large"


async def test_hmac_and_bearer_authentication(tmp_path: Path, store_url: str) -> None:
    signed = phone_source("signed", "generic_json",
                          auth={"scheme": "hmac", "secret": "s3cret-hmac-key", "window_s": 300},
                          notes_auth={"scheme": "bearer", "token": "desk-token"})
    body = read("generic_answered.json")
    async with running(tmp_path, store_url, signed) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as client:
        async def post(signature: str | None) -> httpx.Response:
            headers = {"content-type": "application/json"}
            if signature is not None:
                headers["X-Minsheng-Signature"] = signature
            return await client.post("/intake/signed", content=body, headers=headers)

        missing = await post(None)
        wrong = await post(sign_hmac("another-key", body))
        stale = await post(sign_hmac("s3cret-hmac-key", body, int(time.time()) - 3600))
        assert await scalar(gw, "SELECT COUNT(*) FROM raw_records") == 0  # never journaled
        good = await post(sign_hmac("s3cret-hmac-key", body))
        notes = json.loads(read("notes.json"))
        no_token = await client.post("/intake/signed/calls/c-9/notes", json=notes)
        desk = await client.post("/intake/signed/calls/c-9/notes", json=notes,
                                 headers={"Authorization": "Bearer desk-token"})
        stats = await client.get("/intake/signed/calls/stats",
                                 headers={"Authorization": "Bearer ops-token-for-tests"})
    assert [r.status_code for r in (missing, wrong, stale)] == [401, 401, 403]
    assert good.status_code == 202
    assert (no_token.status_code, desk.status_code) == (401, 202)
    assert stats.json()["auth_refused"] == {"missing": 2, "wrong": 1, "stale": 1}


def exploding_parser(raw: object, ctx: object) -> None:
    raise RuntimeError("a bug in a parser")


async def test_a_parser_bug_quarantines_the_record(tmp_path: Path, store_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PARSERS, "generic_json", f"{__name__}:exploding_parser")
    async with running(tmp_path, store_url, HOTLINE) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as client:
        answer = await client.post("/intake/hotline", json=json.loads(read("generic_missed.json")))
        kept = await gw.store.read(lambda tx: quarantine.list_open(tx))
        status = await scalar(gw, "SELECT status FROM raw_records")
    assert (answer.status_code, answer.json()["outcome"]) == (202, "quarantined")
    assert answer.json()["quarantine_id"] == kept[0].id
    assert kept[0].reason == "normalizer_error" and "a bug in a parser" in str(kept[0].detail)
    assert status == "quarantined"


async def test_cli_reprocess_takes_a_phone_record_back_through_its_call_flow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call without notes is only recorded by the call flow; run through the bare
    pipeline it would become a case of its own."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    monkeypatch.setitem(PARSERS, "generic_json", f"{__name__}:exploding_parser")
    async with running(tmp_path, url, HOTLINE) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as client:
        answer = await client.post("/intake/hotline",
                                   json=generic("generic_answered.json", notes=None))
    assert answer.json()["outcome"] == "quarantined"
    monkeypatch.undo()  # the parser is fixed
    config = write_config(tmp_path / "gateway.yaml", {
        "data_dir": str(tmp_path / "var"), "store": {"url": url}, "sources": [HOTLINE]})
    done = await asyncio.to_thread(
        CliRunner().invoke, main, ["quarantine", "reprocess", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert "\trecorded\t" in done.output
    async with running(tmp_path, url, HOTLINE) as gw:
        assert await scalar(gw, "SELECT COUNT(*) FROM cases") == 0
        assert await scalar(gw, "SELECT status FROM calls") == "ended"


async def test_overdue_calls_are_logged_for_operations(tmp_path: Path, store_url: str,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    quick = phone_source("quick", "generic_json", notes_timeout_min=0.002, overdue_check_s=0.1)
    record = generic("generic_answered.json", notes=None)
    logged = ""
    async with running(tmp_path, store_url, quick) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as client:
        await client.post("/intake/quick", json=record)
        for _ in range(200):
            await asyncio.sleep(0.05)
            logged += capfd.readouterr().out
            if "calls_notes_overdue" in logged:
                break
    line = next(line for line in logged.splitlines() if "calls_notes_overdue" in line)
    assert "count=1" in line or '"count": 1' in line
    assert "hl-20240506-0042" in line
