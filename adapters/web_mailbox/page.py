"""The citizen page of a web mailbox source: ``GET <page_path>`` (``/`` by default).

A form a citizen can fill in on a phone, posting ``multipart/form-data`` to the source's
own ``POST /intake/<source>``. How that route tells the page from an API client: a
request whose ``Accept`` prefers ``text/html`` to ``application/json`` (what a browser
sends when it submits a form) with a ``multipart/form-data`` body is the page's; it must
carry the form's CSRF token and is answered with HTML. Any other request (JSON clients,
``curl`` with ``*/*``, a website backend) is answered as before, JSON or problem+json,
with no token asked.

The CSRF token is ``<issued unix time>.<HMAC-SHA256 of source and time>`` under
``csrf_secret`` (or a key drawn per process), valid ``csrf_max_age_s``. The page loads
nothing from elsewhere: its style and script are the package's files (``static/``),
named in the page with their SRI hashes, under a CSP that allows nothing inline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from adapters.web_mailbox.options import WebMailboxOptions
from adapters.web_mailbox.page_html import (
    SHELL,
    form_main,
    refusal_main,
    result_main,
)
from gateway.model.errors import FieldError
from gateway.support import problem
from gateway.support.tokens import same_secret

if TYPE_CHECKING:
    from gateway.intake.pipeline import Outcome

STATIC_DIR = Path(__file__).parent / "static"
_MEDIA = {".css": "text/css", ".js": "text/javascript"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
STALE_PAGE = FieldError("csrf_token", "csrf_invalid",
                        "页面已过期或无效，请检查内容后重新提交",
                        "the page has expired or is not ours: check and send it again")
HTML_TYPES = ("text/html", "application/xhtml+xml")
JSON_TYPES = ("application/json", "application/problem+json")


def _quality(accept: str, media: str) -> float:
    """The q of ``media`` in an Accept header, from its most specific matching range."""
    best, rank = 0.0, -1
    kind = media.split("/")[0]
    for item in accept.split(","):
        range_, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        range_ = range_.lower()
        specific = 2 if range_ == media else 1 if range_ == f"{kind}/*" else \
            0 if range_ == "*/*" else -1
        if specific > rank:
            best, rank = q, specific
    return best


def prefers_html(accept: str) -> bool:
    """Whether an Accept header prefers an HTML page to JSON (``*/*`` alone does not)."""
    html = max(_quality(accept, m) for m in HTML_TYPES)
    return html > 0 and html > max(_quality(accept, m) for m in JSON_TYPES)


class CsrfTokens:
    """Tokens the form carries: the time they were issued and its HMAC under our key."""

    def __init__(self, scope: str, secret: str | None, max_age_s: int) -> None:
        self.scope = scope
        self.key = (secret or secrets.token_hex(32)).encode()
        self.max_age_s = max_age_s

    def _mac(self, issued: int) -> str:
        return hmac.new(self.key, f"{self.scope}:{issued}".encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        return f"{issued}.{self._mac(issued)}"

    def valid(self, token: str, now: float | None = None) -> bool:
        stamp = token.partition(".")[0]
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            return False
        issued = int(stamp)
        age = (time.time() if now is None else now) - issued
        return -60 <= age <= self.max_age_s and same_secret(token, f"{issued}.{self._mac(issued)}")


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


class CitizenPage:
    """The page of one web mailbox source: its routes and every answer it renders."""

    def __init__(self, source: str, options: WebMailboxOptions) -> None:
        assert options.page_path is not None
        self.options = options
        self.path = options.page_path
        self.action = f"/intake/{source}"
        self.static_prefix = f"/intake/{source}/static"
        self.csrf = CsrfTokens(source, options.csrf_secret.get_secret_value()
                               if options.csrf_secret else None, options.csrf_max_age_s)
        self.files = {p.name: p.read_bytes() for p in STATIC_DIR.iterdir()
                      if p.suffix in _MEDIA}
        self.integrity = {name: _sri(data) for name, data in self.files.items()}

    def routes(self) -> list[web.RouteDef]:
        return [web.get(self.path, self.get),
                web.get(self.static_prefix + "/{name}", self.static)]

    def wants(self, request: web.Request) -> bool:
        """Whether a POST to the source is the page's (see the module's docstring)."""
        return request.content_type == "multipart/form-data" and prefers_html(
            request.headers.get("Accept", ""))

    async def get(self, request: web.Request) -> web.Response:
        return self.form({"submission_id": uuid.uuid4().hex}, [])

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        data = self.files.get(name)
        if data is None:
            return problem.problem(404, "not-found", "没有这个文件 (no such file)", name[:80])
        return web.Response(body=data, content_type=_MEDIA[Path(name).suffix], charset="utf-8",
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    def _page(self, title: str, main: str, status: int,
              headers: dict[str, str] | None = None) -> web.Response:
        html = SHELL.substitute(title=escape(title), main=main, static=self.static_prefix,
                                css_sri=self.integrity["page.css"],
                                js_sri=self.integrity["page.js"])
        return web.Response(text=html, status=status, content_type="text/html",
                            headers={**_HEADERS, **(headers or {})})

    def form(self, values: dict[str, str], errors: list[FieldError],
             status: int = 200) -> web.Response:
        """The form (again), with the citizen's ``values`` and ``errors`` beside fields."""
        main = form_main(self.options, self.action, self.csrf.issue(), values, errors)
        title = "网上信箱 Web mailbox" if not errors else "请修改 Please correct · 网上信箱"
        return self._page(title, main, status)

    def stale(self, values: dict[str, str]) -> web.Response:
        return self.form(values, [STALE_PAGE], 403)

    def result(self, outcome: Outcome, case_code: str | None, status: int) -> web.Response:
        return self._page("已提交 Submitted · 网上信箱",
                          result_main(outcome, case_code, self.path), status)

    def refusal(self, answer: web.Response) -> web.Response:
        """A problem+json refusal (rate limit, size, malformed body) as a page, with the
        same status and ``Retry-After``."""
        assert isinstance(answer.body, bytes)
        body = json.loads(answer.body)
        detail = body.get("detail") or ""
        keep = {k: v for k, v in answer.headers.items() if k == "Retry-After"}
        return self._page(body.get("title", ""), refusal_main(
            body.get("title", ""), detail, self.path), answer.status, keep)
