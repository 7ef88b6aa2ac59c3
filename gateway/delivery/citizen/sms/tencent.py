"""Tencent Cloud SMS: ``SendSms`` of API 3.0 (version 2021-01-11), a JSON POST signed
with TC3-HMAC-SHA256 as Tencent Cloud documents it ("Signature v3",
https://www.tencentcloud.com/document/api/382/40467):

1. ``CanonicalRequest = METHOD \\n URI \\n QUERY \\n CanonicalHeaders \\n SignedHeaders
   \\n hex(SHA256(body))``, the headers as ``name:value\\n``, both lower-case and trimmed,
   sorted by name (here ``content-type``, ``host`` and ``x-tc-action``);
2. ``StringToSign = "TC3-HMAC-SHA256" \\n timestamp \\n date/service/tc3_request \\n
   hex(SHA256(CanonicalRequest))``, the date the UTC one of the timestamp;
3. the key ``HMAC(HMAC(HMAC("TC3" + SecretKey, date), service), "tc3_request")``, the
   signature ``hex(HMAC-SHA256(key, StringToSign))``;
4. ``Authorization: TC3-HMAC-SHA256 Credential=SecretId/scope, SignedHeaders=…,
   Signature=…`` beside ``X-TC-Action``, ``X-TC-Timestamp``, ``X-TC-Version``,
   ``X-TC-Region``.

Tencent answers HTTP 200 with either ``Response.Error.Code`` (the request was refused)
or ``Response.SendStatusSet[0].Code`` (``Ok`` when the message is taken; its id:
``SerialNo``). Rate and frequency limits (``LimitExceeded.*``, ``RequestLimitExceeded``)
and the service's own failures (``InternalError.*``) are retried, the rest is not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from gateway.delivery.citizen.sms.contract import SmsError, SmsMessage
from gateway.delivery.citizen.sms.phone import e164
from gateway.delivery.citizen.sms.transport import Answer, post, refusal
from gateway.support.sms_config import TencentSmsConfig

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "sms"
API_VERSION = "2021-01-11"
CONTENT_TYPE = "application/json; charset=utf-8"
_RETRYABLE_PREFIXES = ("LimitExceeded", "RequestLimitExceeded", "InternalError")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def tc3_authorization(*, secret_id: str, secret_key: str, service: str, timestamp: int,
                      signed_headers: Mapping[str, str], body: bytes,
                      method: str = "POST", uri: str = "/", query: str = "") -> str:
    """The ``Authorization`` header of a request with ``signed_headers`` and ``body``."""
    headers = sorted((name.strip().lower(), value.strip().lower())
                     for name, value in signed_headers.items())
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in headers)
    names = ";".join(name for name, _ in headers)
    canonical_request = "\n".join((method, uri, query, canonical_headers, names,
                                   hashlib.sha256(body).hexdigest()))
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join((ALGORITHM, str(timestamp), scope,
                         hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()))
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return (f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={names}, "
            f"Signature={signature}")


def retryable_code(code: str) -> bool:
    return code.startswith(_RETRYABLE_PREFIXES)


def _authority(endpoint: str) -> str:
    """The ``Host`` header of the endpoint: its host, and its port when one is written."""
    url = URL(endpoint)
    host = url.raw_host or ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
    return f"{host}:{url.port}" if url.explicit_port else host


class TencentSmsProvider:
    """``SmsProvider`` for ``provider: tencent``."""

    def __init__(self, config: TencentSmsConfig, session: aiohttp.ClientSession, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._session = session
        self._clock = clock
        self._host = _authority(config.endpoint)

    def body(self, message: SmsMessage) -> bytes:
        config = self.config
        payload: dict[str, Any] = {
            "PhoneNumberSet": [e164(message.phone)], "SmsSdkAppId": config.sms_sdk_app_id,
            "SignName": config.sign_name, "TemplateId": config.template_id,
            "TemplateParamSet": [message.template_params.get(field, "")
                                 for field in config.template_params],
        }
        if message.reference:
            payload["SessionContext"] = message.reference
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        signed = {"Content-Type": CONTENT_TYPE, "Host": self._host, "X-TC-Action": "SendSms"}
        authorization = tc3_authorization(
            secret_id=self.config.secret_id,
            secret_key=self.config.secret_key.get_secret_value(), service=SERVICE,
            timestamp=timestamp, signed_headers=signed, body=body)
        return {**signed, "X-TC-Timestamp": str(timestamp), "X-TC-Version": API_VERSION,
                "X-TC-Region": self.config.region, "Authorization": authorization}

    async def send(self, message: SmsMessage) -> str:
        body = self.body(message)
        answer = await post(self._session, self.config.endpoint, body,
                            self.headers(body, int(self._clock())),
                            timeout_s=self.config.timeout_s, provider="tencent")
        return _serial_no(answer)


def _serial_no(answer: Answer) -> str:
    """The message's ``SerialNo`` if Tencent took it; else the ``SmsError`` it means."""
    response = answer.json.get("Response") if isinstance(answer.json, dict) else None
    if not isinstance(response, dict):
        refused = refusal("tencent", answer.status)
        raise refused or SmsError(f"tencent: HTTP {answer.status} without a Response",
                                  retryable=False)
    error = response.get("Error")
    if isinstance(error, dict):
        code = str(error.get("Code", ""))
        raise SmsError(f"tencent: {code}", retryable=retryable_code(code))
    statuses = response.get("SendStatusSet")
    first = statuses[0] if isinstance(statuses, list) and statuses else None
    if not isinstance(first, dict):
        raise SmsError("tencent: an answer without SendStatusSet", retryable=False)
    code = str(first.get("Code", ""))
    if code != "Ok":
        raise SmsError(f"tencent: {code}", retryable=retryable_code(code))
    return str(first.get("SerialNo") or response.get("RequestId") or "")
