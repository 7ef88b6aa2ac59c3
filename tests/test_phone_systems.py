"""FreeSWITCH, Zammad-style CTI and Twilio through the real HTTP endpoint, on both
engines: their encodings and authentication schemes, duplicates, out-of-order events,
late events that update the case, bad signatures and malformed bodies."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qsl

import httpx

from gateway.server.app import Gateway
from tests.conftest import sink_lines
from tests.fixtures.cdr import (
    case,
    freeswitch_base64,
    freeswitch_form,
    lines,
    read,
    running,
    scalar,
    sign_twilio,
    with_variables,
)
from tests.fixtures.cdr import source as phone_source
from tests.fixtures.cdr import url as base

FS_AUTH = {"scheme": "basic", "username": "freeswitch", "password": "cdr-pass-1"}
BASIC = "Basic " + base64.b64encode(b"freeswitch:cdr-pass-1").decode()
ZAMMAD_TOKEN = "zT0ken-abc123"
TWILIO_TOKEN = "twilio-auth-token-0123"
FORM = {"content-type": "application/x-www-form-urlencoded"}
NOTES = json.loads(read("notes.json"))
DESK = {"Authorization": "Bearer desk-token"}


async def raw_count(gw: Gateway) -> int:
    return int(await scalar(gw, "SELECT COUNT(*) FROM raw_records"))


# -- FreeSWITCH --------------------------------------------------------------------------


async def test_freeswitch_cdr_in_each_encoding_is_one_case(tmp_path: Path,
                                                           store_url: str) -> None:
    fs = phone_source("fs", "freeswitch_json", auth=FS_AUTH)
    document = read("freeswitch_answered.json")
    bodies = [
        (document, "application/json"),
        (freeswitch_form(document), "application/x-www-form-urlencoded"),
        (freeswitch_base64(document), "application/x-www-form-base64-encoded"),
    ]
    async with running(tmp_path, store_url, fs) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as client:
        answers = [await client.post("/intake/fs?uuid=5b7f0c8e", content=body,
                                     headers={"content-type": kind, "Authorization": BASIC})
                   for body, kind in bodies]
        complaint = await case(gw, client, answers[0].json()["case_code"])
        assert await scalar(gw, "SELECT COUNT(*) FROM calls") == 1
        assert await scalar(gw, "SELECT status FROM raw_records ORDER BY id") == "accepted"
    assert [(a.status_code, a.json()["outcome"]) for a in answers] == [
        (202, "new"), (200, "replay"), (200, "replay")]
    assert len({a.json()["case_code"] for a in answers}) == 1
    assert complaint["subject"] == "小区路灯不亮"
    assert complaint["call"]["ring_seconds"] == 11
    assert complaint["call"]["started_at"] == "2024-05-06T01:30:02Z"  # stamps in Asia/Shanghai


async def test_freeswitch_auth_b_legs_and_malformed_cdrs(tmp_path: Path, store_url: str) -> None:
    fs = phone_source("fs", "freeswitch_json", auth=FS_AUTH, missed_calls="callback",
                      freeswitch={"notes_variables": {"content": "gd_text"}})
    wrong = "Basic " + base64.b64encode(b"freeswitch:guess").decode()
    async with running(tmp_path, store_url, fs) as gw, \
            httpx.AsyncClient(base_url=base(gw), headers={"Authorization": BASIC}) as client:
        no_auth = await client.post("/intake/fs", content=read("freeswitch_answered.json"),
                                    headers={"Authorization": ""})
        bad_auth = await client.post("/intake/fs", content=read("freeswitch_answered.json"),
                                     headers={"Authorization": wrong})
        assert await raw_count(gw) == 0
        b_leg = await client.post("/intake/fs", content=read("freeswitch_b_leg.json"))
        missed = await client.post("/intake/fs", content=read("freeswitch_missed.json"))
        custom = await client.post("/intake/fs", content=with_variables(
            "freeswitch_answered_no_notes.json", gd_text="下水道堵塞，污水外溢。"))
        broken = await client.post("/intake/fs", content=b"cdr=%%%not-json", headers=FORM)
        assert await scalar(gw, "SELECT status FROM raw_records WHERE source_ref = ?",
                            ("e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7",)) == "filtered"
        assert await scalar(gw, "SELECT COUNT(*) FROM calls") == 2  # the B-leg is not a call
        complaint = await case(gw, client, custom.json()["case_code"])
    assert (no_auth.status_code, bad_auth.status_code) == (401, 401)
    assert bad_auth.headers["WWW-Authenticate"] == 'Basic realm="fs"'
    assert (b_leg.status_code, b_leg.json()["outcome"]) == (200, "ignored")
    assert (missed.status_code, missed.json()["outcome"]) == (202, "new")
    assert complaint["body"] == "下水道堵塞，污水外溢。"
    assert broken.status_code == 422 and broken.json()["errors"][0]["field"] == "cdr"


# -- Zammad-style CTI --------------------------------------------------------------------


async def test_zammad_events_duplicates_out_of_order_and_late_hangup(
        tmp_path: Path, store_url: str) -> None:
    cti = phone_source("cti", "zammad_cti", auth={"scheme": "path_token", "token": ZAMMAD_TOKEN},
                       notes_auth={"scheme": "bearer", "token": "desk-token"})
    new_call, answer, hangup = (json.loads(line) for line in lines("zammad_answered.jsonl"))
    call_id = new_call["callId"]
    async with running(tmp_path, store_url, cti) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as client:
        path = f"/intake/cti/{ZAMMAD_TOKEN}"
        wrong_token = await client.post("/intake/cti/guessed", json=new_call)
        no_token = await client.post("/intake/cti", json=new_call)
        assert await raw_count(gw) == 0
        first = await client.post(path, json=answer)  # answer before newCall
        dup_new = [await client.post(path, json=new_call) for _ in range(2)]
        filed = await client.post(f"/intake/cti/calls/{call_id}/notes", json=NOTES, headers=DESK)
        code = filed.json()["case_code"]
        before_hangup = await case(gw, client, code)
        late = await client.post(path, json=hangup)
        again = await client.post(path, json=hangup)
        after = await case(gw, client, code)
        lines_seen = await sink_lines(tmp_path / "cases.jsonl", 2)
    assert wrong_token.status_code == 401
    assert no_token.status_code == 404  # no intake route without the token
    assert (first.status_code, first.json()["call_status"]) == (202, "answered")
    assert [r.json()["outcome"] for r in dup_new] == ["recorded", "replay"]
    assert (filed.status_code, filed.json()["outcome"]) == (202, "new")
    assert before_hangup["call"]["ended_at"] is None
    assert (late.status_code, late.json()["outcome"]) == (200, "updated")
    assert (again.status_code, again.json()) == (200, {
        "outcome": "replay", "call_id": call_id, "case_code": code, "call_status": "ended"})
    assert after["call"]["ended_at"] is not None and after["call"]["agent"] == "坐席 1024"
    assert after["call"]["disposition"] == "answered"
    assert [line["case_code"] for line in lines_seen] == [code, code]


async def test_zammad_form_encoded_missed_call_and_bad_events(tmp_path: Path,
                                                              store_url: str) -> None:
    cti = phone_source("cti", "zammad_cti", missed_calls="callback")
    new_call, hangup = lines("zammad_missed.form.txt")
    async with running(tmp_path, store_url, cti) as gw, \
            httpx.AsyncClient(base_url=base(gw), headers=FORM) as client:
        ringing = await client.post("/intake/cti", content=new_call)
        ended = await client.post("/intake/cti", content=hangup)
        unknown = await client.post("/intake/cti", content="event=transfer&callId=x1")
        no_id = await client.post("/intake/cti", content="event=hangup&cause=cancel")
        complaint = await case(gw, client, ended.json()["case_code"])
    assert (ringing.status_code, ringing.json()["call_status"]) == (202, "ringing")
    assert (ended.status_code, ended.json()["outcome"]) == (202, "new")
    assert complaint["reporter"]["phone"] == "+8613905325555"
    assert complaint["tags"] == ["callback", "abandoned"]
    assert [(e["field"], e["code"]) for e in unknown.json()["errors"]] == [
        ("event", "unknown_event")]
    assert [(e["field"], e["code"]) for e in no_id.json()["errors"]] == [("callId", "required")]


# -- Twilio ------------------------------------------------------------------------------


async def test_twilio_signed_callbacks_out_of_order(tmp_path: Path, store_url: str) -> None:
    tw = phone_source("tw", "twilio", auth={"scheme": "twilio", "auth_token": TWILIO_TOKEN},
                      notes_auth={"scheme": "bearer", "token": "desk-token"})
    ringing, in_progress, completed = lines("twilio_answered.form.txt")
    call_id = dict(parse_qsl(ringing))["CallSid"]
    async with running(tmp_path, store_url, tw) as gw, \
            httpx.AsyncClient(base_url=base(gw), headers=FORM) as client:
        full_url = f"{base(gw)}/intake/tw?attempt=1"

        async def post(body: str, signature: str | None = None) -> httpx.Response:
            params = parse_qsl(body, keep_blank_values=True)
            headers = {"X-Twilio-Signature": signature or sign_twilio(TWILIO_TOKEN, full_url,
                                                                       params)}
            return await client.post(full_url, content=body, headers=headers)

        forged = await post(completed, sign_twilio("not-the-token", full_url, []))
        tampered = await post(completed.replace("CallDuration=270", "CallDuration=9"),
                              sign_twilio(TWILIO_TOKEN, full_url, parse_qsl(completed)))
        unsigned = await client.post(full_url, content=completed)
        assert await raw_count(gw) == 0
        first = await post(completed)  # the last callback arrives first
        filed = await client.post(f"/intake/tw/calls/{call_id}/notes", json=NOTES,
                                  headers=DESK)
        code = filed.json()["case_code"]
        no_ring = (await case(gw, client, code))["call"]["ring_seconds"]
        late_ring = await post(ringing)
        late_answer = await post(in_progress)
        complaint = await case(gw, client, code)
        bad = await post("CallSid=CA1&CallStatus=transferred")
    assert [r.status_code for r in (forged, tampered, unsigned)] == [401, 401, 401]
    assert (first.status_code, first.json()["waiting_for"]) == (202, "notes")
    assert (filed.status_code, no_ring) == (202, None)
    assert (late_ring.status_code, late_ring.json()["outcome"]) == (200, "updated")
    assert late_answer.json()["outcome"] == "recorded"  # ranked higher, same case
    assert late_answer.json()["case_code"] == code
    assert (complaint["call"]["ring_seconds"], complaint["call"]["talk_seconds"]) == (12, 270)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "CallStatus"
