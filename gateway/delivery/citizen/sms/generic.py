"""The generic SMS webhook: one JSON POST per message to an SMS gateway of one's own.

Request: ``{"to": "+8613800138000", "text": "…", "params": {"case_code": …},
"reference": "CY…"}``, with ``Idempotency-Key: <reference>`` (the receiver drops a repeat
of at-least-once delivery), ``Authorization: Bearer <token>`` and the configured headers
when set, and with a ``secret`` the http sink's signature ``X-Minsheng-Signature:
t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>">`` (the same ``sign``, so a receiver of
both checks them alike). Answer: any 2xx is sent (409: the receiver has the key already,
sent too); the provider's id is the answer's JSON ``id`` or ``message_id`` if there is
one. 408, 425, 429, 5xx and no answer are retried; any other 4xx is not.
"""

from __future__ import annotations

import json
import time

import aiohttp

from gateway.delivery.citizen.sms.contract import SmsMessage
from gateway.delivery.citizen.sms.phone import e164
from gateway.delivery.citizen.sms.transport import post, refusal
from gateway.delivery.sinks.http import SIGNATURE_HEADER, sign
from gateway.support.sms_config import GenericSmsConfig


class GenericSmsProvider:
    """``SmsProvider`` for ``provider: generic``."""

    def __init__(self, config: GenericSmsConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self._session = session

    def request(self, message: SmsMessage, now: int) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the POST for ``message`` at unix time ``now``."""
        body = json.dumps({
            "to": e164(message.phone), "text": message.text,
            "params": message.template_params, "reference": message.reference,
        }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {name: value.get_secret_value()
                   for name, value in self.config.headers.items()}
        headers["Content-Type"] = "application/json; charset=utf-8"
        if message.reference:
            headers["Idempotency-Key"] = message.reference
        if self.config.token is not None:
            headers["Authorization"] = f"Bearer {self.config.token.get_secret_value()}"
        if self.config.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.config.secret.get_secret_value(), now, body)
        return body, headers

    async def send(self, message: SmsMessage) -> str:
        body, headers = self.request(message, int(time.time()))
        answer = await post(self._session, self.config.url, body, headers,
                            timeout_s=self.config.timeout_s, provider="generic")
        refused = refusal("generic", answer.status)
        if refused is not None:
            raise refused
        found = answer.json.get("id") or answer.json.get("message_id") \
            if isinstance(answer.json, dict) else None
        return str(found) if isinstance(found, str | int) else ""
