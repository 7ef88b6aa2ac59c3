"""How a phone system (or the agent desktop) proves who it is, one scheme per source.

============  ==========================================================================
scheme        what the request carries
============  ==========================================================================
none          nothing (loopback and tests only)
bearer        ``Authorization: Bearer <token>``
basic         ``Authorization: Basic …`` (FreeSWITCH ``mod_json_cdr``: ``cred`` with
              ``auth-scheme`` basic)
hmac          ``X-Minsheng-Signature: t=<unix>,v1=<hex>``: HMAC-SHA256 of
              ``"<unix>.<body>"`` (as our own http sink signs); outside ``window_s`` of
              the gateway's clock the request is a replay and is refused
path_token    the token as the last path segment: ``/intake/<source>/<token>`` (Zammad
              style: the phone system only lets you configure a URL)
twilio        ``X-Twilio-Signature``: base64 HMAC-SHA1, with the account's auth token, of
              the full URL followed by the POST parameters sorted by name (name + value)
============  ==========================================================================

Missing or wrong credentials get 401; a correctly signed request outside the replay
window gets 403; a ``Host`` header from which no URL can be built (Twilio without
``public_url``), or a Twilio form of more than ``limits.max_form_fields`` fields, gets
400. Every header read here is hostile: whatever it holds (non-ASCII,
lone surrogates, bad base64, a port out of range) is a refusal, never an exception.
Refusals are counted and logged, never journaled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from gateway.model.input_limits import InputLimits
from gateway.support.tokens import same_secret

Scheme = Literal["none", "bearer", "basic", "hmac", "path_token", "twilio"]
_NEEDS = {"bearer": ("token",), "path_token": ("token",), "basic": ("username", "password"),
          "hmac": ("secret",), "twilio": ("auth_token",)}


class AuthOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheme: Scheme
    token: SecretStr | None = None  # bearer, path_token
    username: str | None = None  # basic
    password: SecretStr | None = None  # basic
    secret: SecretStr | None = None  # hmac
    header: str = "X-Minsheng-Signature"  # hmac
    window_s: int = Field(default=300, ge=1, le=86400)  # hmac
    auth_token: SecretStr | None = None  # twilio
    public_url: str | None = Field(default=None, pattern=r"^https?://")  # twilio, behind a proxy

    @model_validator(mode="after")
    def _complete(self) -> AuthOptions:
        missing = [name for name in _NEEDS.get(self.scheme, ()) if not _text(getattr(self, name))]
        if missing:
            raise ValueError(f"auth scheme {self.scheme} needs {' and '.join(missing)}")
        return self

    @property
    def in_path(self) -> bool:
        return self.scheme == "path_token"


def _text(value: str | SecretStr | None) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value or ""


@dataclass(frozen=True)
class Refusal:
    status: int  # 400, 401 or 403
    reason: str  # counted per reason: missing, wrong, stale, bad_host, too_many_fields
    detail: str


MISSING = Refusal(401, "missing", "credentials are missing")
WRONG = Refusal(401, "wrong", "credentials are wrong")
BAD_HOST = Refusal(400, "bad_host", "the Host header is not a valid host[:port], so the "
                   "signed URL cannot be rebuilt (set auth.public_url behind a proxy)")
_MAX_STAMP_DIGITS = 12


class Authenticator:
    """Checks one request against one source's scheme."""

    def __init__(self, options: AuthOptions, clock: Callable[[], float] = time.time,
                 max_fields: int = InputLimits().max_form_fields) -> None:
        self.options = options
        self.clock = clock
        self.max_fields = max_fields  # of a Twilio form, counted before it is parsed

    @property
    def needs_body(self) -> bool:
        return self.options.scheme in ("hmac", "twilio")

    def check(self, request: web.Request, body: bytes = b"") -> Refusal | None:
        scheme = self.options.scheme
        if scheme == "none":
            return None
        if scheme == "bearer":
            return _compare(request.headers.get("Authorization"),
                            f"Bearer {_text(self.options.token)}")
        if scheme == "path_token":
            return _compare(request.match_info.get("token"), _text(self.options.token))
        if scheme == "basic":
            return self._basic(request.headers.get("Authorization"))
        if scheme == "hmac":
            return self._hmac(request.headers.get(self.options.header), body)
        return self._twilio(request, body)

    def _basic(self, header: str | None) -> Refusal | None:
        if not header or not header.startswith("Basic "):
            return MISSING
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII text
            return WRONG
        ok_user = hmac.compare_digest(user.encode(), _text(self.options.username).encode())
        ok_password = hmac.compare_digest(password.encode(),
                                          _text(self.options.password).encode())
        return None if ok_user and ok_password else WRONG

    def _hmac(self, header: str | None, body: bytes) -> Refusal | None:
        if not header:
            return MISSING
        parts = dict(p.strip().partition("=")[::2] for p in header.split(","))
        stamp, given = parts.get("t", ""), parts.get("v1", "")
        if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > _MAX_STAMP_DIGITS \
                or not given:
            return WRONG
        mac = hmac.new(_text(self.options.secret).encode(), f"{stamp}.".encode() + body,
                       hashlib.sha256)
        if not same_secret(given.lower(), mac.hexdigest()):
            return WRONG
        if abs(self.clock() - int(stamp)) > self.options.window_s:
            return Refusal(403, "stale", f"the signature's time is outside the "
                           f"{self.options.window_s} s window: a replay or a wrong clock")
        return None

    def _twilio(self, request: web.Request, body: bytes) -> Refusal | None:
        given = request.headers.get("X-Twilio-Signature")
        if not given:
            return MISSING
        try:
            candidates = _url_variants(self._public_url(request))
        except ValueError:  # yarl or urlsplit: a port out of range, a malformed host
            return BAD_HOST
        form = request.content_type == "application/x-www-form-urlencoded"
        try:
            params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True,
                               max_num_fields=self.max_fields) if form else []
        except ValueError:  # more fields than limits.max_form_fields
            return Refusal(400, "too_many_fields", f"the form has more than {self.max_fields} "
                           "fields (limits.max_form_fields)")
        if not form and "bodySHA256" in request.query:
            digest = hashlib.sha256(body).hexdigest()
            if not same_secret(request.query["bodySHA256"], digest):
                return WRONG
        token = _text(self.options.auth_token)
        for candidate in candidates:
            if same_secret(given, twilio_signature(token, candidate, params)):
                return None
        return WRONG

    def _public_url(self, request: web.Request) -> str:
        if self.options.public_url:
            return self.options.public_url.rstrip("/") + request.raw_path
        return str(request.url)


def _compare(given: str | None, expected: str) -> Refusal | None:
    if not given:
        return MISSING
    return None if same_secret(given, expected) else WRONG


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature: the URL, then each parameter name and value in order
    of name (values of a repeated name sorted too), HMAC-SHA1, base64."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:  # one pass: a form of many fields costs linear time
        by_name.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(by_name)
                         for value in sorted(by_name[name]))
    mac = hmac.new(auth_token.encode(), data.encode("utf-8", "surrogatepass"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with the default port added or removed (Twilio signs the
    URL as configured, which a proxy may have rewritten either way)."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    if parts.port is None and default is not None:
        other = f"{host}:{default}"
    elif parts.port == default:
        other = host
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=other))]
