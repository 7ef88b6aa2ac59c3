"""The citizen page of a web mailbox source: ``GET <page_path>`` (``/`` by default).

A form a citizen can fill in on a phone, posting ``multipart/form-data`` to the source's
own ``POST /intake/<source>``. How that route tells the page from an API client: a
request whose ``Accept`` prefers ``text/html`` to ``application/json`` (what a browser
sends when it submits a form) with a ``multipart/form-data`` body is the page's; it must
carry the form's CSRF token and is answered with HTML. Any other request (JSON clients,
``curl`` with ``*/*``, a website backend) is answered as before, JSON or problem+json,
with no token asked.

The CSRF token (``csrf_secret``, valid ``csrf_max_age_s``), the shell, the style sheet
and the security headers are every citizen page's (``gateway/support/web_page.py``); the
page's own script is the package's ``static/page.js``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from adapters.web_mailbox.options import WebMailboxOptions
from adapters.web_mailbox.page_html import form_main, refusal_main, result_main
from gateway.model.errors import FieldError
from gateway.support.web_page import CSP, STALE_PAGE, CsrfTokens, PageAssets, Site

__all__ = ["CSP", "CitizenPage", "CsrfTokens", "prefers_html"]

if TYPE_CHECKING:
    from gateway.intake.pipeline import Outcome

SCRIPT = Path(__file__).parent / "static" / "page.js"
SITE = Site("网上信箱", "web mailbox")
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


class CitizenPage:
    """The page of one web mailbox source: its routes and every answer it renders."""

    def __init__(self, source: str, options: WebMailboxOptions) -> None:
        assert options.page_path is not None
        self.options = options
        self.path = options.page_path
        self.action = f"/intake/{source}"
        self.assets = PageAssets(f"/intake/{source}/static", SCRIPT, SITE)
        self.csrf = CsrfTokens(source, options.csrf_secret.get_secret_value()
                               if options.csrf_secret else None, options.csrf_max_age_s)

    def routes(self) -> list[web.RouteDef]:
        return [web.get(self.path, self.get), self.assets.route()]

    def wants(self, request: web.Request) -> bool:
        """Whether a POST to the source is the page's (see the module's docstring)."""
        return request.content_type == "multipart/form-data" and prefers_html(
            request.headers.get("Accept", ""))

    async def get(self, request: web.Request) -> web.Response:
        return self.form({"submission_id": uuid.uuid4().hex}, [])

    def _page(self, title: str, main: str, status: int,
              headers: dict[str, str] | None = None) -> web.Response:
        return self.assets.render(title, main, status, headers)

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
