"""Requests along every error path of the HTTP edge, each carrying personal data where a
log line might quote it: a broken request line, broken headers, broken multipart, wrong
credentials of each authentication scheme, bad query values, bodies the parsers choke on,
and an exception inside a handler. Sent as raw bytes over a socket, since an HTTP client
refuses to send most of them. What comes back does not matter here; what is logged does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
from dataclasses import dataclass

# The personal data sent, in the spellings of tests/test_logs_scan.py.
PHONE = "13800138000"
PHONE_INTL = "+8613912345678"
ID_CARD = "110105199003071234"
ID_CARD_X = "37020219851231002X"
EMAIL = "wang.xiaoming@example.com"
PERSONAL_SENT = [PHONE, PHONE_INTL, ID_CARD, ID_CARD_X, EMAIL]
BOUNDARY = "b0undary"


@dataclass(frozen=True)
class Secrets:
    """The credentials the gateway under test is configured with (from its environment)."""

    web: str  # the web mailbox's token
    bearer: str  # the bearer-authenticated hotline's token
    ops: str
    api: str


def http(method: str, target: str, headers: dict[str, str] | None = None,
         body: bytes = b"", extra: bytes = b"") -> bytes:
    """One HTTP/1.1 request as bytes; ``extra`` is put among the headers as is."""
    head = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return "\r\n".join(head).encode() + b"\r\n" + extra + b"\r\n" + body


def _multipart(part_head: bytes, content: bytes = b"x") -> bytes:
    return (f"--{BOUNDARY}\r\n".encode() + part_head + b"\r\n\r\n" + content
            + f"\r\n--{BOUNDARY}--\r\n".encode())


def broken_protocol() -> list[bytes]:
    """A bad request line and bad headers: aiohttp's parser refuses them itself."""
    return [
        f"{PHONE} / HTTP/1.1\r\nHost: a\r\n\r\n".encode(),  # a phone as the method
        f"GET /intake/web HTTP/1.1 {ID_CARD}\r\nHost: a\r\n\r\n".encode(),
        f"GET /\x00{EMAIL} HTTP/1.1\r\nHost: a\r\n\r\n".encode(),
        http("POST", "/intake/web", extra=f"X-Phone: {PHONE}\x01\r\n".encode()),
        http("POST", "/intake/web", extra=f"X-Id: \x00{ID_CARD}\r\n".encode()),
        http("POST", "/intake/web", extra=f"{EMAIL} {ID_CARD_X}\r\n".encode()),  # no colon
        http("POST", "/intake/web", extra=f"X-{ID_CARD}\x00: a\r\n".encode()),
        http("POST", "/intake/web", extra=f"X-Big: {(PHONE + ' ') * 1500}\r\n".encode()),
        http("POST", "/intake/web", extra=f"Content-Length: {PHONE}x\r\n".encode()),
        http("POST", "/intake/web", {"Transfer-Encoding": "chunked"})
        + f"{ID_CARD}zz\r\n{EMAIL}\r\n0\r\n\r\n".encode(),
    ]


def broken_multipart(secrets: Secrets) -> list[bytes]:
    """Multipart bodies with personal data in names, headers and where the parser breaks."""
    auth = {"Authorization": f"Bearer {secrets.web}"}
    typed = {**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    name = f'Content-Disposition: form-data; name="photo"; filename="{PHONE}'.encode()
    bodies = [
        _multipart(name + b'\xff\xfe.png"\r\nContent-Type: image/png', b"\x89PNG\r\n\x1a\n"),
        _multipart(f'Content-Disposition: form-data; name="{ID_CARD}"'.encode()
                   + b"\x00\r\nX-Mail: " + EMAIL.encode() + b"\x01"),
        _multipart(f'Content-Disposition: form-data; name="{EMAIL}"'.encode(), PHONE.encode()),
        f"{PHONE} not a boundary {ID_CARD}\r\n".encode(),
        _multipart(name + b'.png"', b"\x89PNG" + PHONE.encode())[:-12],  # truncated
    ]
    requests = [http("POST", "/intake/web", typed, body) for body in bodies]
    no_boundary = {**auth, "Content-Type": "multipart/form-data"}
    requests.append(http("POST", "/intake/web", no_boundary, _multipart(name + b'"')))
    return requests


def wrong_credentials(secrets: Secrets) -> list[bytes]:
    """Each authentication scheme, wrong in a way that quotes personal data."""
    basic_pd = base64.b64encode(f"{PHONE}:{EMAIL}".encode()).decode()
    form = f"CallSid=CA1&From={PHONE_INTL.replace('+', '%2B')}&CallStatus=completed".encode()
    record = json.dumps({"call_id": "c1", "caller": PHONE, "content": ID_CARD}).encode()
    return [
        http("POST", "/intake/web", {"Authorization": f"Bearer {PHONE}"}, record),
        http("POST", "/intake/hotline", {"Authorization": f"Bearer {EMAIL}"}, record),
        http("POST", "/intake/hotline-fs", body=record,
             extra=f"Authorization: Basic é{PHONE}\r\n".encode()),
        http("POST", "/intake/hotline-fs", {"Authorization": f"Basic {basic_pd}"}, record),
        http("POST", "/intake/hotline-hmac",
             {"X-Minsheng-Signature": f"t={PHONE},v1={ID_CARD}"}, record),
        http("POST", "/intake/hotline-hmac", {"X-Minsheng-Signature": f"{EMAIL}"}, record),
        http("POST", f"/intake/hotline-cti/{ID_CARD}", body=record),
        http("POST", f"/intake/hotline-cti/{EMAIL}/calls/{PHONE}/notes", body=record),
        http("POST", "/intake/hotline-twilio",
             {"X-Twilio-Signature": PHONE, "Content-Type": "application/x-www-form-urlencoded"},
             form),
        http("POST", "/intake/hotline-twilio", {"X-Twilio-Signature": ID_CARD},
             form, extra=f"Host: {PHONE}\x7f.example.com\r\n".encode()),
        http("GET", f"/v1/cases/{ID_CARD}", {"Authorization": f"Bearer {EMAIL}"}),
        http("GET", "/v1/status", {"Authorization": f"Bearer {PHONE}"}),
        http("GET", f"/ops?token={ID_CARD}"),
    ]


def bad_values(secrets: Secrets) -> list[bytes]:
    """Query values and bodies that broke a parser once, and an exception in a handler."""
    api = {"Authorization": f"Bearer {secrets.api}"}
    web = {"Authorization": f"Bearer {secrets.web}", "Content-Type": "application/json",
           "X-Request-Id": f"req-{EMAIL}-{ID_CARD}", "Idempotency-Key": f"k-{PHONE}"}
    hotline = {"Authorization": f"Bearer {secrets.bearer}", "Content-Type": "application/json"}
    # A lone surrogate as a JSON escape, as a script sends it (valid JSON, invalid text).
    surrogate = f'{{"phone": "{PHONE}", "email": "{EMAIL}", "content": "a\\ud800 {ID_CARD}"}}'
    deep = f'{{"caller": "{PHONE}", "x": ' + "[" * 1200 + "]" * 1200 + "}"
    zipped = gzip.compress(f"{PHONE} {ID_CARD} {EMAIL} ".encode() * 2000)
    return [
        http("GET", f"/v1/cases?after=²{PHONE}", api),
        http("GET", f"/v1/cases?limit={ID_CARD}", api),
        http("GET", f"/intake/hotline/calls/stats?since={PHONE}d",
             {"Authorization": f"Bearer {secrets.ops}"}),
        http("POST", "/intake/web", web, surrogate.encode()),
        http("POST", "/intake/web", web, deep.encode()),
        http("POST", "/intake/web", {**web, "Content-Type": "application/x-www-form-urlencoded"},
             f"phone={PHONE}&content=%ED%A0%80{ID_CARD}&email={EMAIL}".encode()),
        http("POST", "/intake/hotline", hotline, surrogate.encode()),
        http("POST", "/intake/hotline", hotline, deep.encode()),
        http("POST", "/intake/hotline", {**hotline, "Content-Encoding": "gzip"}, zipped),
        http("POST", f"/nowhere/{PHONE}", {"Content-Encoding": "gzip"}, zipped[:200]),
        http("GET", "/bug", {"X-Probe": f"{PHONE} {ID_CARD_X} {EMAIL}"}),
    ]


async def send(port: int, request: bytes) -> bytes:
    """Send ``request`` on a new connection; whatever comes back until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 30)  # a safety net, not an assertion
    except ConnectionError:
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def every_request(secrets: Secrets) -> list[bytes]:
    return [*broken_protocol(), *broken_multipart(secrets), *wrong_credentials(secrets),
            *bad_values(secrets)]
