"""Alibaba Cloud SMS: Dysmsapi ``SendSms`` (version 2017-05-25), an RPC-style request
signed with signature v1 (HMAC-SHA1) as Alibaba Cloud documents it
(https://www.alibabacloud.com/help/en/sms/signature-method):

1. every parameter but ``Signature`` (the common ones and ``SendSms``'s own), sorted by
   name, each name and value percent-encoded as RFC 3986 says (only ``A-Z a-z 0-9 - _ .
   ~`` kept; UTF-8 bytes as ``%XY``; a space is ``%20``), joined ``name=value`` with ``&``:
   the canonicalized query string;
2. ``StringToSign = METHOD + "&" + encode("/") + "&" + encode(canonicalized query)``;
3. ``Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))``.

The request is a form POST (the phone number stays out of any URL a proxy might log).
The answer's ``Code`` is ``OK`` when the message is taken (its id: ``BizId``); flow
control (``isv.BUSINESS_LIMIT_CONTROL``, ``isv.DAY_LIMIT_CONTROL``, ``Throttling.*``) and
the service's own failures are retried, every other code (a bad number, template or
signature name, bad credentials) is not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

import aiohttp

from gateway.delivery.citizen.sms.contract import SmsError, SmsMessage
from gateway.delivery.citizen.sms.phone import aliyun_number
from gateway.delivery.citizen.sms.transport import Answer, post, refusal
from gateway.support.sms_config import AliyunSmsConfig

API_VERSION = "2017-05-25"
_RETRYABLE_CODES = frozenset({
    "isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "ServiceUnavailable",
    "InternalError", "isp.SYSTEM_ERROR",
})


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, as the signature wants it (``quote`` keeps
    exactly ``A-Z a-z 0-9 - _ . ~`` with ``safe=""``)."""
    return quote(value, safe="")


def canonicalized_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(name)}={percent_encode(params[name])}"
                    for name in sorted(params))


def signature(access_key_secret: str, method: str, params: Mapping[str, str]) -> str:
    """The Base64 ``Signature`` of a request with these parameters (not yet encoded)."""
    to_sign = (f"{method}&{percent_encode('/')}&"
               f"{percent_encode(canonicalized_query(params))}")
    mac = hmac.new(f"{access_key_secret}&".encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def retryable_code(code: str) -> bool:
    return code in _RETRYABLE_CODES or code.startswith("Throttling")


class AliyunSmsProvider:
    """``SmsProvider`` for ``provider: aliyun``."""

    def __init__(self, config: AliyunSmsConfig, session: aiohttp.ClientSession, *,
                 nonce: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.config = config
        self._session = session
        self._nonce = nonce

    def template_param(self, message: SmsMessage) -> str:
        """``TemplateParam``: the template's variables as a JSON object."""
        names = self.config.template_params
        values = (dict(message.template_params) if names is None
                  else {name: message.template_params.get(field, "")
                        for name, field in names.items()})
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))

    def params(self, message: SmsMessage, now: datetime) -> dict[str, str]:
        """Every parameter of the request, ``Signature`` included."""
        config = self.config
        params = {
            "AccessKeyId": config.access_key_id, "Action": "SendSms", "Format": "JSON",
            "RegionId": config.region_id, "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": self._nonce(), "SignatureVersion": "1.0",
            "Timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION, "PhoneNumbers": aliyun_number(message.phone),
            "SignName": config.sign_name, "TemplateCode": config.template_code,
            "TemplateParam": self.template_param(message),
        }
        if message.reference:
            params["OutId"] = message.reference
        params["Signature"] = signature(config.access_key_secret.get_secret_value(),
                                        "POST", params)
        return params

    async def send(self, message: SmsMessage) -> str:
        body = canonicalized_query(self.params(message, datetime.now(UTC))).encode("ascii")
        answer = await post(self._session, self.config.endpoint, body,
                            {"Content-Type": "application/x-www-form-urlencoded"},
                            timeout_s=self.config.timeout_s, provider="aliyun")
        return _biz_id(answer)


def _biz_id(answer: Answer) -> str:
    """The message's ``BizId`` if the answer says ``OK``; else the ``SmsError`` it means."""
    code = answer.json.get("Code") if isinstance(answer.json, dict) else None
    if not isinstance(code, str):
        refused = refusal("aliyun", answer.status)
        raise refused or SmsError(f"aliyun: HTTP {answer.status} without a Code",
                                  retryable=False)
    if code != "OK":
        raise SmsError(f"aliyun: {code} (HTTP {answer.status})",
                       retryable=retryable_code(code))
    return str(answer.json.get("BizId") or answer.json.get("RequestId") or "")
