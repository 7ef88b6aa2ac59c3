"""A real case platform for the tests: an aiohttp server on loopback that receives the
gateway's ``http`` sink deliveries, records every request, and can be scripted to fail.

Like a well-behaved receiver it stores each case once under its ``Idempotency-Key``: a
repeated key is answered 200 again (or 409 when asked) without storing anything new.
With a secret it checks ``X-Minsheng-Signature`` and answers 401 to a bad one.

Scripting (each rule applies in this order):

- ``refuse(keys_or_refs, status=422)``: a 4xx for the given case codes (or ``source_ref``
  values in the body), every time.
- ``script([...])``: the next requests get these actions in turn: ``"500"`` (any
  status given as text), ``"hang"`` (sleep past the sink timeout, then 503, nothing
  stored), ``"hang_accept"`` (store the case, then answer too late: the answer is lost).
- ``fail_for(seconds, status=500)`` / ``fail_always(status=500)``: every request fails
  for a while / until ``recover()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

ACCEPT = "accept"
DUPLICATE = "duplicate"
SIGNATURE_TOLERANCE_S = 300


@dataclass
class Received:
    """One request as the receiver saw it, and what it did with it."""

    at: float
    headers: CIMultiDict[str]
    body: bytes
    key: str | None
    action: str  # accept | duplicate | hang | hang_accept | refuse | bad_signature | "<status>"
    status: int  # 0 while the answer is pending (a hang)

    def json(self) -> Any:
        return json.loads(self.body)


def verify_signature(secret: str, header: str, body: bytes, now: float | None = None) -> bool:
    """Check ``t=<unix>,v1=<hex>`` = HMAC-SHA256 of ``"<unix>.<body>"``, and its freshness."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs((now or time.time()) - stamp) <= SIGNATURE_TOLERANCE_S
    return fresh and hmac.compare_digest(mac, parts.get("v1", ""))


class Receiver:
    """The downstream case system. ``await start()`` gives its URL; ``await close()``."""

    def __init__(self, secret: str | None = None, hang_s: float = 1.5,
                 duplicate_status: int = 200) -> None:
        self.secret = secret
        self.hang_s = hang_s
        self.duplicate_status = duplicate_status
        self.requests: list[Received] = []
        self.accepted: dict[str, Any] = {}  # idempotency key -> the case body stored
        self._script: deque[str] = deque()
        self._refused: dict[str, int] = {}
        self._fail_until = 0.0
        self._fail_status = 500
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.add_routes([web.post("/cases", self._handle)])
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/cases"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- scripting ---------------------------------------------------------------------

    def script(self, actions: Iterable[str]) -> None:
        self._script.extend(actions)

    def refuse(self, keys_or_refs: Iterable[str], status: int = 422) -> None:
        for k in keys_or_refs:
            self._refused[k] = status

    def fail_for(self, seconds: float, status: int = 500) -> None:
        self._fail_until = time.monotonic() + seconds
        self._fail_status = status

    def fail_always(self, status: int = 500) -> None:
        self.fail_for(float("inf"), status)

    def clear_refusals(self) -> None:
        self._refused.clear()

    @property
    def script_left(self) -> int:
        return len(self._script)

    def recover(self) -> None:
        """Answer normally from now on (refusals of given keys stay)."""
        self._script.clear()
        self._fail_until = 0.0

    # -- what happened -----------------------------------------------------------------

    def requests_for(self, key: str) -> list[Received]:
        return [r for r in self.requests if r.key == key]

    def answered_ok(self) -> Counter[str]:
        """Per key, how many requests were answered 2xx (a first accept plus repeats)."""
        return Counter(r.key for r in self.requests if r.key and 200 <= r.status < 300)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait (generously) until ``predicate()`` holds; fail the test if it never does."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"receiver: condition not met within {timeout}s "
                    f"({len(self.requests)} requests, {len(self.accepted)} cases accepted)"
                )
            await asyncio.sleep(0.05)

    # -- the handler -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("Idempotency-Key")
        action = self._decide(request.headers, body, key)
        seen = Received(time.time(), CIMultiDict(request.headers), body, key, action, 0)
        self.requests.append(seen)
        seen.status, answer = await self._act(action, body, key)
        return web.json_response(answer, status=seen.status)

    def _decide(self, headers: Any, body: bytes, key: str | None) -> str:
        if self.secret is not None and not verify_signature(
            self.secret, headers.get("X-Minsheng-Signature", ""), body
        ):
            return "bad_signature"
        if key in self._refused or _source_ref(body) in self._refused:
            return "refuse"
        if self._script:
            return self._script.popleft()
        if time.monotonic() < self._fail_until:
            return str(self._fail_status)
        return DUPLICATE if key in self.accepted else ACCEPT

    async def _act(self, action: str, body: bytes, key: str | None) -> tuple[int, Any]:
        if action == "bad_signature":
            return 401, {"error": "bad signature"}
        if action == "refuse":
            status = self._refused.get(key or "") or self._refused[_source_ref(body) or ""]
            return status, {"error": "refused"}
        if action in ("hang", "hang_accept"):
            if action == "hang_accept":
                self._store(body, key)
            await asyncio.sleep(self.hang_s)
            return (200, {"status": "accepted late"}) if action == "hang_accept" else (
                503, {"error": "too slow"})
        if action == ACCEPT:
            self._store(body, key)
            return 201, {"status": "accepted"}
        if action == DUPLICATE:
            return self.duplicate_status, {"status": "already have it"}
        return int(action), {"error": f"scripted {action}"}

    def _store(self, body: bytes, key: str | None) -> None:
        if key is not None and key not in self.accepted:
            self.accepted[key] = json.loads(body)


def _source_ref(body: bytes) -> str | None:
    try:
        ref = json.loads(body).get("source_ref")
    except (ValueError, AttributeError):
        return None
    return ref if isinstance(ref, str) else None
