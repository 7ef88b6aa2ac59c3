"""One POST to an SMS provider, the same for every provider: a timeout for the whole
request, and every way the network can fail turned into a retryable ``SmsError``.

The request and its answer are never logged here: both hold the phone number. Error
messages name the provider, the status or the exception's type, nothing of the body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.delivery.citizen.sms.contract import SmsError
from gateway.delivery.sinks.http import classify_status
from gateway.model.errors import RetriableSinkError

# The most of an answer read: a provider's answer to one message is a few hundred bytes.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """What the provider answered: the status, the JSON body if it was JSON (else None)."""

    status: int
    json: Any
    headers: Mapping[str, str]


async def post(session: aiohttp.ClientSession, url: str, body: bytes,
               headers: Mapping[str, str], *, timeout_s: float, provider: str) -> Answer:
    """POST ``body``; raise ``SmsError(retryable=True)`` on a timeout or a network error."""
    try:
        async with session.post(url, data=body, headers=dict(headers),
                                timeout=aiohttp.ClientTimeout(total=timeout_s),
                                allow_redirects=False) as response:
            raw = await _read_bounded(response)
            return Answer(response.status, _json_or_none(raw), dict(response.headers))
    except TimeoutError as exc:
        raise SmsError(f"{provider}: no answer within {timeout_s}s", retryable=True) from exc
    except aiohttp.ClientError as exc:
        raise SmsError(f"{provider}: {type(exc).__name__}", retryable=True) from exc


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """The answer's body, at most ``MAX_ANSWER_BYTES`` (the rest is not waited for)."""
    raw = bytearray()
    async for chunk in response.content.iter_chunked(16 * 1024):
        raw += chunk
        if len(raw) >= MAX_ANSWER_BYTES:
            break
    return bytes(raw[:MAX_ANSWER_BYTES])


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def refusal(provider: str, status: int) -> SmsError | None:
    """None if the HTTP status says taken; else the ``SmsError`` it means, retryable as
    the http sink decides (``classify_status``: 408, 425, 429 and 5xx are; 409, the
    receiver has the idempotency key already, is taken)."""
    outcome = classify_status(status)
    if outcome is None:
        return None
    return SmsError(f"{provider}: HTTP {status}",
                    retryable=isinstance(outcome, RetriableSinkError))
