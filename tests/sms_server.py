"""Three SMS providers on loopback for the tests, each written from its provider's
documentation and checking the signature itself (nothing here calls the gateway's
signers, so a mistake shared by both sides cannot pass):

- ``/generic``: ``Authorization: Bearer <token>`` and ``X-Minsheng-Signature:
  t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>">``; the body ``{"to", "text",
  "params", "reference"}``; a bad token or signature is 401.
- ``/aliyun/``: Dysmsapi ``SendSms`` as a form POST, signature v1
  (alibabacloud.com/help/en/sms/signature-method): the parameters but ``Signature``
  sorted, RFC 3986-encoded, ``POST&%2F&<encoded query>``, HMAC-SHA1 under
  ``secret + "&"``, Base64. A wrong one is HTTP 400 ``SignatureDoesNotMatch``; a nonce
  used twice ``SignatureNonceUsed``; a Timestamp more than 15 minutes off
  ``InvalidTimeStamp.Expired``.
- ``/tencent/``: ``SendSms`` 2021-01-11 with TC3-HMAC-SHA256
  (tencentcloud.com/document/api/382/40467): the canonical request rebuilt from the
  headers the ``Authorization`` names, as they arrived; a wrong signature is HTTP 200
  with ``Response.Error.Code = AuthFailure.SignatureFailure``, a timestamp more than 5
  minutes off ``AuthFailure.SignatureExpire``.

``answer``: ``ok``, ``refuse`` (a permanent refusal in the provider's words), ``throttle``
(its rate limit), ``error`` (HTTP 503 with an HTML page) or ``hang`` (no answer until the
server closes).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import re
import socket
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

from aiohttp import web

Answer = Literal["ok", "refuse", "throttle", "error", "hang"]
_UNRESERVED = set((string.ascii_letters + string.digits + "-_.~").encode())


@dataclass
class Credentials:
    token: str = "generic-token-for-tests"
    secret: str = "generic-signing-secret"
    access_key_id: str = "LTAItestaccesskey"
    access_key_secret: str = "aliyun-access-key-secret"
    secret_id: str = "AKIDtestsecretid"
    secret_key: str = "tencent-secret-key"


@dataclass
class Received:
    """What a provider accepted as well-formed and correctly signed."""

    provider: str
    fields: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _rfc3986(value: str) -> str:
    """Percent-encoding as Alibaba Cloud's page spells it, byte by byte."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in value.encode("utf-8"))


def _form_pairs(body: bytes) -> dict[str, str]:
    """A form body split by hand: ``%20`` and ``+`` are kept apart from the spec's view."""
    pairs: dict[str, str] = {}
    for item in body.decode("ascii").split("&"):
        name, _, value = item.partition("=")
        pairs[unquote_to_bytes(name).decode()] = unquote_to_bytes(value).decode("utf-8")
    return pairs


def _hmac256(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


class SmsServer:
    def __init__(self, credentials: Credentials | None = None) -> None:
        self.credentials = credentials or Credentials()
        self.answer: Answer = "ok"
        self.received: list[Received] = []
        self.refused_signatures = 0
        self._nonces: set[str] = set()
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> str:
        app = web.Application()
        app.add_routes([web.post("/generic", self._generic), web.post("/aliyun/", self._aliyun),
                        web.post("/tencent/", self._tencent)])
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.base

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _failure(self) -> web.Response | None:
        """What every provider does alike for ``error`` and ``hang``."""
        if self.answer == "hang":
            await self._closing.wait()
            return web.Response(status=503)
        if self.answer == "error":
            return web.Response(status=503, text="<html>503 Service Unavailable</html>",
                                content_type="text/html")
        return None

    # ---- generic -------------------------------------------------------------------

    async def _generic(self, request: web.Request) -> web.Response:
        body = await request.read()
        creds = self.credentials
        if request.headers.get("Authorization") != f"Bearer {creds.token}":
            return web.json_response({"error": "bad token"}, status=401)
        found = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})",
                             request.headers.get("X-Minsheng-Signature", ""))
        expected = hmac.new(creds.secret.encode(), found.group(1).encode() + b"." + body,
                            hashlib.sha256).hexdigest() if found else ""
        if not found or not hmac.compare_digest(expected, found.group(2)):
            self.refused_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        payload = json.loads(body)
        if set(payload) != {"to", "text", "params", "reference"} or \
                not re.fullmatch(r"\+[1-9]\d{6,14}", payload["to"]):
            return web.json_response({"error": "bad body"}, status=422)
        if (failure := await self._failure()) is not None:
            return failure
        if self.answer == "throttle":
            return web.json_response({"error": "slow down"}, status=429)
        if self.answer == "refuse":
            return web.json_response({"error": "number blocked"}, status=400)
        self.received.append(Received("generic", payload, dict(request.headers)))
        return web.json_response({"id": f"g-{next(self._ids)}"})

    # ---- aliyun --------------------------------------------------------------------

    def _aliyun_check(self, form: dict[str, str]) -> str | None:
        """The error code Alibaba Cloud would answer for this form, None if it is good."""
        if form.get("AccessKeyId") != self.credentials.access_key_id:
            return "InvalidAccessKeyId.NotFound"
        given = form.pop("Signature", "")
        query = "&".join(f"{_rfc3986(k)}={_rfc3986(form[k])}" for k in sorted(form))
        to_sign = "POST&" + _rfc3986("/") + "&" + _rfc3986(query)
        key = (self.credentials.access_key_secret + "&").encode()
        expected = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha1).digest())
        if not hmac.compare_digest(expected.decode(), given):
            self.refused_signatures += 1
            return "SignatureDoesNotMatch"
        if form.get("SignatureNonce", "") in self._nonces:
            return "SignatureNonceUsed"
        self._nonces.add(form.get("SignatureNonce", ""))
        stamp = datetime.strptime(form.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ")
        if abs(stamp.replace(tzinfo=UTC).timestamp() - time.time()) > 900:
            return "InvalidTimeStamp.Expired"
        wanted = {"Action": "SendSms", "Version": "2017-05-25", "Format": "JSON",
                  "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0"}
        if any(form.get(k) != v for k, v in wanted.items()):
            return "MissingParameter"
        if not re.fullmatch(r"1\d{10}|[2-9]\d{6,14}", form.get("PhoneNumbers", "")):
            return "isv.MOBILE_NUMBER_ILLEGAL"
        if not isinstance(json.loads(form.get("TemplateParam", "null")), dict):
            return "isv.INVALID_JSON_PARAM"
        if not form.get("SignName") or not form.get("TemplateCode"):
            return "MissingParameter"
        return None

    async def _aliyun(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response({"Code": "InvalidParameter"}, status=400)
        form = _form_pairs(await request.read())
        problem = self._aliyun_check(form)
        if problem is not None:
            status = 404 if problem.startswith("InvalidAccessKeyId") else 400
            return web.json_response({"Code": problem, "Message": problem,
                                      "RequestId": "R-refused"}, status=status)
        if (failure := await self._failure()) is not None:
            return failure
        if self.answer == "throttle":
            return web.json_response({"Code": "isv.BUSINESS_LIMIT_CONTROL",
                                      "Message": "触发号码天级流控", "RequestId": "R-t"})
        if self.answer == "refuse":
            return web.json_response({"Code": "isv.SMS_TEMPLATE_ILLEGAL",
                                      "Message": "模板不合法", "RequestId": "R-r"})
        self.received.append(Received("aliyun", form))
        return web.json_response({"Code": "OK", "Message": "OK", "RequestId": "R-ok",
                                  "BizId": f"biz-{next(self._ids)}"})

    # ---- tencent -------------------------------------------------------------------

    def _tencent_check(self, request: web.Request, body: bytes) -> str | None:
        header = request.headers.get("Authorization", "")
        found = re.fullmatch(r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d\d-\d\d)/(\w+)/"
                             r"tc3_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
                             header)
        if found is None:
            return "AuthFailure.InvalidAuthorization"
        secret_id, date, service, signed, given = found.groups()
        if secret_id != self.credentials.secret_id:
            return "AuthFailure.SecretIdNotFound"
        names = signed.split(";")
        if not {"content-type", "host"} <= set(names) or names != sorted(names):
            return "AuthFailure.InvalidAuthorization"
        canonical_headers = "".join(
            f"{n}:{request.headers.get(n, '').strip().lower()}\n" for n in names)
        canonical = (f"POST\n/\n\n{canonical_headers}\n{signed}\n"
                     f"{hashlib.sha256(body).hexdigest()}")
        stamp = int(request.headers.get("X-TC-Timestamp", "0"))
        if date != time.strftime("%Y-%m-%d", time.gmtime(stamp)):
            return "AuthFailure.InvalidAuthorization"
        to_sign = (f"TC3-HMAC-SHA256\n{stamp}\n{date}/{service}/tc3_request\n"
                   f"{hashlib.sha256(canonical.encode()).hexdigest()}")
        key = _hmac256(_hmac256(_hmac256(("TC3" + self.credentials.secret_key).encode(),
                                         date), service), "tc3_request")
        if not hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256)
                                   .hexdigest(), given):
            self.refused_signatures += 1
            return "AuthFailure.SignatureFailure"
        if abs(stamp - time.time()) > 300:
            return "AuthFailure.SignatureExpire"
        if (service != "sms" or request.headers.get("X-TC-Action") != "SendSms"
                or request.headers.get("X-TC-Version") != "2021-01-11"
                or not request.headers.get("X-TC-Region")):
            return "InvalidParameter"
        return None

    async def _tencent(self, request: web.Request) -> web.Response:
        body = await request.read()
        problem = self._tencent_check(request, body)
        if problem is not None:
            return web.json_response({"Response": {"Error": {"Code": problem, "Message": problem},
                                                   "RequestId": "r-refused"}})
        payload = json.loads(body)
        phones = payload.get("PhoneNumberSet")
        if (not isinstance(phones, list) or len(phones) != 1
                or not re.fullmatch(r"\+[1-9]\d{6,14}", phones[0])
                or not all(isinstance(p, str) for p in payload.get("TemplateParamSet", [None]))
                or not payload.get("SmsSdkAppId") or not payload.get("TemplateId")
                or not payload.get("SignName")):
            return web.json_response({"Response": {"Error": {
                "Code": "InvalidParameterValue.IncorrectPhoneNumber", "Message": "bad"},
                "RequestId": "r-bad"}})
        if (failure := await self._failure()) is not None:
            return failure
        code = {"throttle": "LimitExceeded.PhoneNumberThirtySecondLimit",
                "refuse": "FailedOperation.TemplateIncorrectOrUnapproved"}.get(self.answer, "Ok")
        serial = f"serial-{next(self._ids)}"
        if code == "Ok":
            self.received.append(Received("tencent", payload, dict(request.headers)))
        return web.json_response({"Response": {"SendStatusSet": [{
            "SerialNo": serial, "PhoneNumber": phones[0], "Fee": 1,
            "SessionContext": payload.get("SessionContext", ""), "Code": code,
            "Message": "send success" if code == "Ok" else code, "IsoCode": "CN"}],
            "RequestId": "r-ok"}})


def block(provider: str, base: str, creds: Credentials, **extra: Any) -> dict[str, Any]:
    """The ``sms:`` block of ``provider`` pointed at the loopback server."""
    blocks: dict[str, dict[str, Any]] = {
        "generic": {"url": f"{base}/generic", "token": creds.token, "secret": creds.secret},
        "aliyun": {"access_key_id": creds.access_key_id,
                   "access_key_secret": creds.access_key_secret, "sign_name": "民声网关",
                   "template_code": "SMS_123456789", "endpoint": f"{base}/aliyun/"},
        "tencent": {"secret_id": creds.secret_id, "secret_key": creds.secret_key,
                    "sms_sdk_app_id": "1400000001", "sign_name": "民声网关",
                    "template_id": "1234567", "endpoint": f"{base}/tencent/",
                    "template_params": ["case_code", "lookup_url"]},
    }
    return {"provider": provider, **blocks[provider], **extra}
