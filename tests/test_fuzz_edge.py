"""Property tests of the public edge (issue 11): whatever bytes reach an intake route,
through the real HTTP endpoint of a live gateway, the answer is below 500, a 4xx is
``application/problem+json`` with a reason, and nothing is quarantined (a quarantine
entry means "our bug", so input alone must never make one).

Three generators, each against the web mailbox, every hotline format and the look-up
(requests are signed as each source expects, so they reach the parsers): raw bytes under
any media type; multipart with random boundaries, part headers, names, file names and truncation;
JSON that is deep, wide, has lone surrogates, NaN or Infinity, or duplicate keys.
Derandomized and bounded (``EXAMPLES`` per test), so a run is repeatable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_gateway import CTI_TOKEN, FuzzGateway, credentials, running_gateway

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("MINSHENG_FUZZ_EXAMPLES", "60"))  # per target and generator
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))
TARGETS = {
    "web": "/intake/web",
    "generic_json": "/intake/hotline-json",
    "freeswitch_json": "/intake/hotline-fs",
    "zammad_cti": f"/intake/hotline-cti/{CTI_TOKEN}",
    "twilio": "/intake/hotline-twilio",
    "call_notes": "/intake/hotline-json/calls/fuzz-call/notes",
    "lookup": "/v1/lookup",
}
# Field names the parsers look for, so generated members reach them.
FIELDS = ["content", "phone", "email", "name", "subject", "address", "anonymous",
          "submitted_at", "submission_id", "call_id", "caller", "started_at", "ended_at",
          "answered_at", "disposition", "notes", "variables", "uuid", "cdr", "event",
          "callId", "from", "user", "CallSid", "CallStatus", "Timestamp", "SequenceNumber",
          "case_code", "phone_last4"]
MEDIA_TYPES = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data",
               "multipart/form-data; boundary=", "multipart/form-data; boundary=x",
               "application/x-www-form-base64-encoded", "text/plain", "", "application/xml",
               "application/json; charset=gbk", "application/json; charset=nope"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzGateway]:
    with running_gateway(tmp_path_factory.mktemp("edge")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(live: FuzzGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base_url, timeout=60) as c:
        yield c


def post(client: httpx.Client, path: str, body: bytes, content_type: str) -> httpx.Response:
    """POST signed as the route's source expects (an empty type sends no Content-Type)."""
    headers = {"Content-Type": content_type} if content_type else {}
    url = str(client.base_url).rstrip("/") + path
    headers.update(credentials("POST", url, headers, body))
    return client.post(path, content=body, headers=headers)


def assert_clean_answer(response: httpx.Response) -> None:
    """Below 500; a refusal is problem+json that says why."""
    status = response.status_code
    sent = f"{response.request.headers.get('content-type')!r} {response.request.content[:300]!r}"
    assert status < 500, f"{status} for {sent}: {response.text[:300]}"
    if status >= 400:
        media = response.headers.get("content-type", "")
        assert media.startswith("application/problem+json"), \
            f"{status} {media} for {sent}: {response.text[:300]}"
        problem = response.json()
        reasons = [e.get("reason") for e in problem.get("errors", [])]
        assert problem.get("title") and (problem.get("detail") or any(reasons)), problem


# -- generators --------------------------------------------------------------------------

def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.text() \
        | st.floats(allow_nan=True, allow_infinity=True)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8),
                                          inner, max_size=6), max_leaves=max_leaves)


# A record each target would accept, so a hostile value put in it reaches the parser's
# deeper steps (the store, the call join), not only the first "required" check.
BASES: dict[str, dict[str, Any]] = {
    "web": {"content": "正阳路路灯一周不亮", "phone": "13800138000"},
    "generic_json": {"call_id": "c", "caller": "13800138000", "callee": "12345",
                     "started_at": "2024-05-06T10:00:00+08:00",
                     "ended_at": "2024-05-06T10:00:30+08:00"},
    "freeswitch_json": {"variables": {"uuid": "c", "caller_id_number": "13800138000",
                                      "start_stamp": "2024-05-06 10:00:00",
                                      "end_stamp": "2024-05-06 10:00:30"}},
    "zammad_cti": {"event": "newCall", "callId": "c", "from": "13800138000", "to": "12345",
                   "direction": "in"},
    "twilio": {"CallSid": "c", "CallStatus": "ringing", "From": "+8613800138000",
               "To": "12345"},
    "call_notes": {"content": "正阳路路灯一周不亮", "subject": "路灯"},
    "lookup": {"case_code": "CY-20191120-W-000123-7", "phone_last4": "8000"},
}
DEEP = "__deep__"
LONE_SURROGATES = ["\ud800", "\udfff", "\udc00x", "\ud83d"]


@st.composite
def hostile_value(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["surrogate", "nan", "deep", "wide", "long", "any"]))
    if kind == "surrogate":
        return draw(st.text(max_size=5)) + draw(st.sampled_from(LONE_SURROGATES))
    if kind == "nan":
        return draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    if kind == "deep":
        return DEEP
    if kind == "wide":
        return {f"k{i}": i for i in range(draw(st.sampled_from([100, 5000, 20000])))}
    if kind == "long":
        return "长" * draw(st.sampled_from([5001, 60000]))
    return draw(json_values())


def record_text(record: Any, depth: int) -> bytes:
    """``record`` as JSON (NaN and lone surrogates as Python writes them), with the
    ``DEEP`` marker replaced by ``depth`` nested arrays."""
    text = json.dumps(record, allow_nan=True)
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth).encode()


@st.composite
def hostile_json(draw: st.DrawFn, target: str) -> bytes:
    """The target's base record with hostile members (lone surrogates, NaN, depth,
    width, length, anything), a duplicate key, or a deep or random document alone."""
    depth = draw(st.sampled_from([10, 999, 1001, 5000, 100_000]))
    shape = draw(st.sampled_from(["member", "member", "member", "duplicate", "alone"]))
    if shape == "alone":
        return record_text(draw(st.just(DEEP) | json_values()), depth)
    record = json.loads(json.dumps(BASES[target]))
    holder = record.get("variables", record) if draw(st.booleans()) else record
    for _ in range(draw(st.integers(1, 3))):
        holder[draw(st.sampled_from([*holder, *FIELDS]))] = draw(hostile_value())
    text = record_text(record, depth)
    if shape == "duplicate":
        key = json.dumps(next(iter(record)))
        text = text[:-1] + f", {key}: {json.dumps(draw(hostile_value()))}}}".encode()
    return text


HEADER_BYTES = st.binary(max_size=12) | st.sampled_from(
    [b"\x00", b"\r", b"\xff\xfe", "名".encode(), "é".encode("latin-1"), b'"', b"CON", b"NUL.png"])


@st.composite
def hostile_multipart(draw: st.DrawFn) -> tuple[bytes, str]:
    """A multipart body and its Content-Type: random boundary, parts, headers, names,
    file names (bytes, not always UTF-8), maybe cut short or opened with junk."""
    boundary = draw(st.text(st.characters(min_codepoint=33, max_codepoint=126,
                                          exclude_characters='";\\'), max_size=70))
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.sampled_from([f.encode() for f in FIELDS]) | HEADER_BYTES)
        disposition = b'form-data; name="' + name + b'"'
        if draw(st.booleans()):
            disposition += b'; filename="' + draw(HEADER_BYTES) + b'"'
        headers = [b"Content-Disposition: " + disposition]
        if draw(st.booleans()):
            headers.append(b"Content-Type: " + draw(st.sampled_from(
                [b"image/png", b"text/plain; charset=gbk", b"application/pdf", b"x/y"])
                | HEADER_BYTES))
        if draw(st.booleans()):
            headers.append(draw(HEADER_BYTES) + b": " + draw(HEADER_BYTES))
        parts.append(b"\r\n".join(headers) + b"\r\n\r\n" + draw(st.binary(max_size=200)))
    delimiter = b"--" + boundary.encode()
    body = b"".join(delimiter + b"\r\n" + p + b"\r\n" for p in parts) + delimiter + b"--\r\n"
    body = draw(st.binary(max_size=16)) + body if draw(st.booleans()) else body
    if draw(st.booleans()):
        body = body[:draw(st.integers(0, len(body)))]
    declared = draw(st.sampled_from([f"; boundary={boundary}", f'; boundary="{boundary}"',
                                     "", "; boundary="]))
    return body, "multipart/form-data" + declared


# -- the properties ----------------------------------------------------------------------

FORMATS = list(TARGETS)




@pytest.mark.parametrize("target", FORMATS)
def test_raw_bytes(client: httpx.Client, target: str) -> None:
    @FUZZ
    @given(body=st.binary(max_size=2048), content_type=st.sampled_from(MEDIA_TYPES))
    def run(body: bytes, content_type: str) -> None:
        assert_clean_answer(post(client, TARGETS[target], body, content_type))

    run()


@pytest.mark.parametrize("target", FORMATS)
def test_multipart(client: httpx.Client, target: str) -> None:
    @FUZZ
    @given(multipart=hostile_multipart())
    def run(multipart: tuple[bytes, str]) -> None:
        body, content_type = multipart
        assert_clean_answer(post(client, TARGETS[target], body, content_type))

    run()


@pytest.mark.parametrize("target", FORMATS)  # lone surrogates, depth
def test_json(client: httpx.Client, target: str) -> None:
    @FUZZ
    @given(body=hostile_json(target), content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain"]))
    def run(body: bytes, content_type: str) -> None:
        assert_clean_answer(post(client, TARGETS[target], body, content_type))

    run()


def test_ops_login_raw_bytes(client: httpx.Client) -> None:
    """The status page's login form: below 500; a 4xx is problem+json or, for a wrong
    token, the documented login page (text/html 401)."""
    @FUZZ
    @given(body=st.binary(max_size=512), content_type=st.sampled_from(MEDIA_TYPES))
    def run(body: bytes, content_type: str) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post("/ops/login", content=body, headers=headers)
        if response.status_code == 401 and response.headers["content-type"].startswith(
                "text/html"):
            return
        assert_clean_answer(response)

    run()


def test_lookup_page_raw_bytes(client: httpx.Client) -> None:
    """The look-up page's plain form post: below 500, answered with the page (text/html)
    whatever came, or problem+json for what never reaches the page (a body too big)."""
    @FUZZ
    @given(body=st.binary(max_size=2048) | st.sampled_from(
        [b"case_code=%FF&phone_last4=8000", b"csrf_token=1.x&case_code=" + b"A" * 5000,
         "case_code=CY－20191120－W－000123－7&phone_last4=８０００".encode()]),
        content_type=st.sampled_from(MEDIA_TYPES))
    def run(body: bytes, content_type: str) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post("/lookup", content=body, headers=headers)
        if response.headers["content-type"].startswith("text/html"):
            assert response.status_code < 500
            return
        assert_clean_answer(response)

    run()


def test_nothing_was_quarantined(live: FuzzGateway) -> None:
    """Runs after the properties above (same module, same gateway)."""
    left = live.open_quarantine()
    assert left == [], sorted({(e.source, str((e.detail or {}).get("error"))[:100])
                               for e in left})
