"""Hostile request content against the real intake endpoints, on both engines (issue 11).

Each class of input (JSON shapes, malformed multipart, shape limits, hostile headers and
query strings) is a table run against one gateway with a web mailbox and the four phone
formats. For every row: no 5xx; a 4xx answer is problem+json whose reason names the field
or the limit in Chinese and English; what was refused after reading is journaled (capped)
and what was refused before reading is not; nothing is quarantined for its shape alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from gateway.server.app import Gateway
from tests.conftest import base_url
from tests.fixtures.cdr import API, OPS_TOKEN, read, running, scalar, sign_hmac, sign_twilio
from tests.fixtures.cdr import source as phone_source

HMAC_SECRET = "gj-secret-0123"
BASIC = "Basic " + base64.b64encode(b"freeswitch:cdr-pass-1").decode()
ZAMMAD_TOKEN = "zT0ken-abc123"
TWILIO_TOKEN = "twilio-auth-token-0123"
DESK = {"Authorization": "Bearer desk-token"}
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
CJK = re.compile(r"[\u4e00-\u9fff]")
SOURCES = [
    {"name": "web", "adapter": "web_mailbox", "rate_limit": None},
    phone_source("gj", "generic_json", auth={"scheme": "hmac", "secret": HMAC_SECRET},
                 notes_auth={"scheme": "bearer", "token": "desk-token"}),
    phone_source("fs", "freeswitch_json", auth={
        "scheme": "basic", "username": "freeswitch", "password": "cdr-pass-1"}),
    phone_source("zm", "zammad_cti", auth={"scheme": "path_token", "token": ZAMMAD_TOKEN}),
    phone_source("tw", "twilio", auth={"scheme": "twilio", "auth_token": TWILIO_TOKEN},
                 notes_auth={"scheme": "bearer", "token": "desk-token"}),
]


@pytest.fixture
async def edge(tmp_path: Path, store_url: str) -> AsyncIterator[Gateway]:
    async with running(tmp_path, store_url, *SOURCES) as gw:
        yield gw


@dataclass
class Row:
    """One hostile request and what it must get."""

    name: str
    status: int
    names: str  # a word the problem must name (the field, the code or the limit)
    journaled: bool = True  # refused after reading (journaled) or before (not)
    extra: dict[str, Any] = field(default_factory=dict)


async def post_to(client: httpx.AsyncClient, gw: Gateway, target: str, body: bytes,
                  content_type: str = "application/json") -> httpx.Response:
    """POST ``body`` to a source, authenticated as that source expects."""
    headers = {"content-type": content_type}
    path = f"/intake/{target}"
    if target == "gj":
        headers["X-Minsheng-Signature"] = sign_hmac(HMAC_SECRET, body)
    elif target == "fs":
        headers["Authorization"] = BASIC
    elif target == "zm":
        path = f"/intake/zm/{ZAMMAD_TOKEN}"
    elif target == "tw":
        headers["X-Twilio-Signature"] = sign_twilio(TWILIO_TOKEN, base_url(gw) + path, [])
    elif target == "notes":
        path = "/intake/gj/calls/c-1/notes"
        headers.update(DESK)
    return await client.post(path, content=body, headers=headers)


def assert_problem(response: httpx.Response, row: Row) -> None:
    """A 4xx problem+json naming the field or limit, in Chinese and English."""
    where = f"{row.name}: {response.status_code} {response.text[:300]}"
    assert response.status_code == row.status, where
    assert response.headers["content-type"].startswith("application/problem+json"), where
    problem = response.json()
    text = json.dumps(problem, ensure_ascii=False)
    assert row.names in text, where
    assert CJK.search(text) and re.search(r"[a-z]{4} [a-z]{3}", text), where


async def journal_rows(gw: Gateway) -> int:
    return int(await scalar(gw, "SELECT COUNT(*) FROM raw_records"))


async def no_quarantine(gw: Gateway) -> None:
    assert await scalar(gw, "SELECT COUNT(*) FROM quarantine") == 0


async def run_rows(gw: Gateway, rows: list[tuple[Row, Callable[[httpx.AsyncClient],
                                                               Any]]]) -> None:
    async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
        for row, send in rows:
            before = await journal_rows(gw)
            response = await send(client)
            assert_problem(response, row)
            assert await journal_rows(gw) == before + (1 if row.journaled else 0), row.name
    await no_quarantine(gw)


# -- JSON shapes, every JSON-reading route ------------------------------------------------

DEEP = b'{"content": ' + b"[" * 1000 + b"]" * 1000 + b"}"
WIDE = b'{"content": [' + b",".join(b"0" for _ in range(20_000)) + b"]}"
JSON_ROWS = [
    Row("nested 1,000 deep", 422, "limits.max_json_depth"),
    Row("20,000 items", 422, "limits.max_json_items"),
    Row("NaN", 422, "NaN"),
    Row("Infinity", 422, "Infinity"),
    Row("duplicate key", 422, "duplicate_key"),
    Row("lone surrogate value", 422, "lone_surrogate"),
    Row("lone surrogate key", 422, "lone_surrogate"),
]
JSON_BODIES = [DEEP, WIDE, b'{"content": NaN}', b'{"content": -Infinity}',
               b'{"content": "a", "content": "b"}',
               b'{"phone": "13800138000", "content": "a\\ud800"}',
               b'{"phone": "13800138000", "content": "ok", "x\\udc00": 1}']


@pytest.mark.parametrize("target", ["web", "gj", "fs", "zm", "tw", "notes"])
async def test_json_shapes_are_refused_naming_the_limit(edge: Gateway, target: str) -> None:
    rows = [(row, lambda c, b=body: post_to(c, edge, target, b))
            for row, body in zip(JSON_ROWS, JSON_BODIES, strict=True)]
    await run_rows(edge, rows)


async def test_freeswitch_cdr_form_and_base64_go_through_the_strict_reader(edge: Gateway) -> None:
    deep = quote('{"variables": ' + "[" * 500 + "]" * 500 + "}", safe="").encode()
    rows = [
        (Row("cdr= form, deep", 422, "limits.max_json_depth"),
         lambda c: post_to(c, edge, "fs", b"cdr=" + deep, "application/x-www-form-urlencoded")),
        (Row("cdr base64, NaN", 422, "NaN"),
         lambda c: post_to(c, edge, "fs", b"cdr=" + base64.b64encode(b'{"variables": NaN}'),
                           "application/x-www-form-base64-encoded")),
    ]
    await run_rows(edge, rows)


# -- multipart -------------------------------------------------------------------------


def part(name: bytes, value: bytes, extra: bytes = b"") -> bytes:
    return (b'--XyZ\r\nContent-Disposition: form-data; name="' + name + b'"' + extra
            + b"\r\n\r\n" + value + b"\r\n")


GOOD_PARTS = part(b"phone", b"13800138000") + part(b"content", "路灯不亮".encode())
MULTIPART = "multipart/form-data; boundary=XyZ"
MULTIPART_ROWS: list[tuple[Row, bytes, str]] = [
    (Row("no boundary", 400, "malformed_multipart", journaled=False),
     GOOD_PARTS + b"--XyZ--\r\n", "multipart/form-data"),
    (Row("empty boundary", 400, "malformed_multipart", journaled=False),
     GOOD_PARTS + b"--XyZ--\r\n", 'multipart/form-data; boundary=""'),
    (Row("truncated", 400, "malformed_multipart", journaled=False),
     GOOD_PARTS[:-20], MULTIPART),
    (Row("no boundary in the body", 400, "malformed_multipart", journaled=False),
     b"just some bytes\r\n", MULTIPART),
    (Row("NUL in a part header", 400, "malformed_multipart", journaled=False),
     part(b"con\x00tent", b"x") + b"--XyZ--\r\n", MULTIPART),
    (Row("control byte in a header name", 400, "malformed_multipart", journaled=False),
     b"--XyZ\r\nContent-Dis\x01position: form-data; name=\"a\"\r\n\r\nx\r\n--XyZ--\r\n",
     MULTIPART),
    (Row("non-UTF-8 file name", 400, "unreadable_part_filename", journaled=False),
     GOOD_PARTS + part(b"f", b"\x89PNG\r\n\x1a\n", b'; filename="a\xff\xfe.png"')
     + b"--XyZ--\r\n", MULTIPART),
    (Row("a header line over the limit", 400, "limits.max_part_header_bytes", journaled=False),
     b"--XyZ\r\nX-Pad: " + b"a" * 9000 + b"\r\n" + GOOD_PARTS[7:] + b"--XyZ--\r\n", MULTIPART),
    (Row("too many header lines", 400, "limits.max_part_headers", journaled=False),
     b"--XyZ\r\n" + b"X-A: b\r\n" * 40 + GOOD_PARTS[7:] + b"--XyZ--\r\n", MULTIPART),
    (Row("40,000 empty parts", 413, "limits.max_parts", journaled=False),
     part(b"a", b"") * 40_000 + b"--XyZ--\r\n", MULTIPART),
    (Row("a field in a charset that makes surrogates", 422, "unreadable"),
     GOOD_PARTS + b'--XyZ\r\nContent-Disposition: form-data; name="name"\r\n'
     b"Content-Type: text/plain; charset=unicode_escape\r\n\r\n\\ud800\r\n--XyZ--\r\n",
     MULTIPART),
]


async def test_malformed_and_oversized_multipart(edge: Gateway) -> None:
    rows = [(row, lambda c, b=body, t=kind: post_to(c, edge, "web", b, t))
            for row, body, kind in MULTIPART_ROWS]
    await run_rows(edge, rows)
    assert edge.adapters["web"].refusals["too_many_parts"] == 1


async def test_a_good_multipart_form_still_files_a_case(edge: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(edge)) as client:
        answer = await post_to(client, edge, "web", GOOD_PARTS + b"--XyZ--\r\n", MULTIPART)
    assert answer.status_code == 202, answer.text
    await no_quarantine(edge)


# -- forms ---------------------------------------------------------------------------


async def test_too_many_form_fields_is_refused_cheaply(edge: Gateway) -> None:
    many = b"a=&" * 40_000
    form = "application/x-www-form-urlencoded"
    rows = [
        (Row("web: 40,000 fields", 422, "limits.max_form_fields"),
         lambda c: post_to(c, edge, "web", many, form)),
        (Row("zammad: 40,000 fields", 422, "limits.max_form_fields"),
         lambda c: post_to(c, edge, "zm", many, form)),
    ]
    await run_rows(edge, rows)


# -- what a refusal keeps ---------------------------------------------------------------


async def test_a_refused_body_is_kept_capped_with_its_size_and_digest(edge: Gateway) -> None:
    body = json.dumps({"phone": "13800138000", "content": "长" * 80_000},
                      ensure_ascii=False).encode()
    async with httpx.AsyncClient(base_url=base_url(edge)) as client:
        answer = await post_to(client, edge, "web", body)
    assert answer.status_code == 422
    row = await edge.store.read(lambda tx: tx.fetchone(
        "SELECT status, payload, metadata FROM raw_records ORDER BY id DESC LIMIT 1"))
    assert row[0] == "rejected"
    assert len(bytes(row[1])) == 64 * 1024
    summary = json.loads(row[2])["refused_body"]
    assert summary["size"] == len(body) and len(summary["sha256"]) == 64


async def test_a_json_body_over_max_form_kb_is_refused_before_reading(edge: Gateway) -> None:
    body = json.dumps({"content": "x" * (256 * 1024 + 1)}).encode()
    async with httpx.AsyncClient(base_url=base_url(edge)) as client:
        answer = await post_to(client, edge, "web", body)
    assert_problem(answer, Row("over max_form_kb", 413, "limits.max_form_kb"))
    assert await journal_rows(edge) == 0


async def test_no_budget_for_the_body_is_a_429_with_retry_after(tmp_path: Path,
                                                                store_url: str) -> None:
    web = {**SOURCES[0], "limits": {"body_budget_mb": 1, "body_wait_s": 0}}
    async with running(tmp_path, store_url, web) as gw, \
            httpx.AsyncClient(base_url=base_url(gw)) as client:
        budget = gw.adapters["web"].budget  # type: ignore[attr-defined]
        async with budget.hold(budget.capacity):  # another upload holds all of it
            busy = await post_to(client, gw, "web", b'{"content": "x"}')
        after = await post_to(client, gw, "web", b'{"phone": "13800138000", "content": "x"}')
    assert_problem(busy, Row("busy", 429, "limits.body_budget_mb"))
    assert busy.headers["Retry-After"] == "1"
    assert after.status_code == 202


# -- hostile headers -----------------------------------------------------------------------


async def raw_request(gw: Gateway, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes httpx would refuse to send (non-UTF-8 headers); the status and body."""
    host, port = gw.config.server.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


async def test_authentication_headers_never_cause_a_500(edge: Gateway) -> None:
    form = b"CallSid=CA1&CallStatus=ringing&From=%2B8613800138000"
    rows = [
        (Row("Basic é", 401, "credentials"),
         lambda c: c.post("/intake/fs", content=b"{}",
                          headers={"Authorization": "Basic é".encode()})),
        (Row("Basic not base64", 401, "credentials"),
         lambda c: c.post("/intake/fs", content=b"{}", headers={"Authorization": "Basic @@"})),
        (Row("HMAC stamp of superscript digits", 401, "credentials"),
         lambda c: c.post("/intake/gj", content=b"{}",
                          headers={"X-Minsheng-Signature": "t=²,v1=ab".encode()})),
        (Row("HMAC stamp of 5,000 digits", 401, "credentials"),
         lambda c: c.post("/intake/gj", content=b"{}",
                          headers={"X-Minsheng-Signature": f"t={'9' * 5000},v1=ab"})),
        (Row("Twilio with a Host whose port is out of range", 400, "Host"),
         lambda c: c.post("/intake/tw", content=form,
                          headers={"X-Twilio-Signature": "x", "Host": "example.org:99999",
                                   "content-type": "application/x-www-form-urlencoded"})),
        (Row("Twilio with a Host of two colons", 400, "Host"),
         lambda c: c.post("/intake/tw", content=form,
                          headers={"X-Twilio-Signature": "x", "Host": "a:b:c",
                                   "content-type": "application/x-www-form-urlencoded"})),
        (Row("ops token of non-ASCII", 401, "credentials"),
         lambda c: c.get("/intake/gj/calls/stats", headers={"Authorization": "Bearer é".encode()})),
    ]
    await run_rows(edge, [(Row(r.name, r.status, r.names, journaled=False), s) for r, s in rows])


async def test_non_utf8_header_bytes_are_journaled_not_a_500(edge: Gateway) -> None:
    body = json.dumps({"phone": "13800138000", "content": "路灯不亮"}).encode()
    head = (b"POST /intake/web HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"User-Agent: a\xff\xed\xa0\x80\r\nIdempotency-Key: k\xff\xed\xa0\x80\r\n")
    first, _ = await raw_request(edge, head, body)
    again, _ = await raw_request(edge, head, body)
    assert (first, again) == (202, 200)
    assert await scalar(edge, "SELECT COUNT(*) FROM raw_records") == 2
    twilio = (b"POST /intake/tw HTTP/1.1\r\nHost: \xff\xfe:80\r\nX-Twilio-Signature: x\r\n"
              b"Content-Type: application/x-www-form-urlencoded\r\n")
    status, _ = await raw_request(edge, twilio, b"CallSid=CA1")
    assert 400 <= status < 500
    await no_quarantine(edge)


# -- query strings ---------------------------------------------------------------------


async def test_query_parameters_are_read_without_exceptions(edge: Gateway) -> None:
    stats = "/intake/gj/calls/stats"
    rows = [
        (Row("after=²", 422, "after"), lambda c: c.get("/v1/cases?after=²", headers=API)),
        (Row("after of 5,000 digits", 422, "after"),
         lambda c: c.get("/v1/cases?after=" + "9" * 5000, headers=API)),
        (Row("limit=٣", 422, "limit"), lambda c: c.get("/v1/cases?limit=٣", headers=API)),
        (Row("since=99999999d", 422, "since"),
         lambda c: c.get(stats + "?since=99999999d", headers=OPS)),
        (Row("since=²h", 422, "since"), lambda c: c.get(stats + "?since=²h", headers=OPS)),
        (Row("since=0001-01-01", 200, ""), lambda c: c.get(stats + "?since=0001-01-01",
                                                           headers=OPS)),
        (Row("threshold=²", 422, "threshold"),
         lambda c: c.get(stats + "?threshold=²", headers=OPS)),
        (Row("threshold=-1", 422, "threshold"),
         lambda c: c.get(stats + "?threshold=-1", headers=OPS)),
        (Row("threshold huge", 422, "threshold"),
         lambda c: c.get(stats + "?threshold=" + "9" * 40, headers=OPS)),
    ]
    async with httpx.AsyncClient(base_url=base_url(edge)) as client:
        for row, send in rows:
            response = await send(client)
            if row.status == 200:
                assert response.status_code == 200, (row.name, response.text)
            else:
                assert_problem(response, row)


async def test_limits_are_configurable_and_their_errors_name_the_key(tmp_path: Path,
                                                                     store_url: str) -> None:
    web = {**SOURCES[0], "limits": {"max_json_depth": 4, "max_parts": 2}}
    async with running(tmp_path, store_url, web) as gw, \
            httpx.AsyncClient(base_url=base_url(gw)) as client:
        deep = await post_to(client, gw, "web", b'{"content": [[[["x"]]]]}')
        parts = await post_to(client, gw, "web", GOOD_PARTS * 2 + b"--XyZ--\r\n", MULTIPART)
    assert_problem(deep, Row("depth 4", 422, "4 levels"))
    assert_problem(parts, Row("2 parts", 413, "more than 2 parts"))


def test_a_bad_limit_is_a_config_error_naming_it() -> None:
    from gateway.model.errors import ConfigError
    from gateway.support.config import parse_config

    raw = {"sources": [{"name": "web", "adapter": "web_mailbox", "limits": {"max_parts": 0}},
                       {"name": "gj", "adapter": "cdr_webhook", "auth": {"scheme": "none"},
                        "limits": {"max_json_depthh": 3}}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    errors = "\n".join(caught.value.errors)
    assert "sources[0] (name=web): limits.max_parts" in errors
    assert "sources[1] (name=gj): limits.max_json_depthh" in errors


def test_the_fixture_documents_are_still_good_json() -> None:
    """The strict reader accepts what real phone systems send (the shipped fixtures)."""
    from gateway.model import strict_json
    from gateway.model.input_limits import InputLimits

    for name in ("generic_answered.json", "freeswitch_answered.json", "notes.json"):
        assert isinstance(strict_json.loads(read(name).decode(), InputLimits()), dict)
