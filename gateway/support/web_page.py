"""What every page a citizen opens shares: the shell (masthead, footer), the style sheet,
the security headers, the CSRF tokens of its form and the way its files are served.

Two pages use it: the web mailbox's form (``adapters/web_mailbox/page.py``) and the
look-up by case code (``gateway/server/lookup_page.py``). It lives here, below both,
because the core may not import an adapter. Every page loads nothing from elsewhere: its
style sheet and its one script are served from the package under the page's own
``static`` prefix and named in the page with their SRI hashes, under a CSP that allows
nothing inline and nothing foreign.

The CSRF token is ``<issued unix time>.<HMAC-SHA256 of scope and time>`` under a
configured secret (or a key drawn per process), valid ``max_age_s``: stateless, so any
replica sharing the secret accepts a form another one rendered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path
from string import Template

from aiohttp import web

from gateway.model.errors import FieldError
from gateway.support import problem
from gateway.support.tokens import same_secret

ASSETS = Path(__file__).parent / "web_assets"
SHELL = Template((ASSETS / "shell.html").read_text("utf-8"))
STYLE_SHEET = "page.css"
MEDIA = {".css": "text/css", ".js": "text/javascript"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
CSRF_FIELD = "csrf_token"
STALE_PAGE = FieldError(CSRF_FIELD, "csrf_invalid",
                        "页面已过期或无效，请检查内容后重新提交",
                        "the page has expired or is not ours: check and send it again")
FOOT = ("您提交的内容仅用于办理您反映的事项。", "What you send is used only to handle your matter.")


def bilingual(zh: str, en: str) -> str:
    """Chinese first, English beside it (styled quieter), both escaped."""
    return f'{escape(zh)} <span lang="en">{escape(en)}</span>'


def sri(data: bytes) -> str:
    """The Subresource Integrity value of a file the page loads."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


# The key of forms when none is configured: drawn once, when this module is imported.
# The workers of one gateway (server.workers) fork from a parent that has imported it,
# so they share it, and a page one worker served is accepted by the worker its form
# posts to. Replicas on several machines need a configured secret.
_GROUP_KEY = secrets.token_hex(32)


class CsrfTokens:
    """Tokens a form carries: the time they were issued and its HMAC under our key (the
    scope is in the MAC, so one key serves every page)."""

    def __init__(self, scope: str, secret: str | None, max_age_s: int) -> None:
        self.scope = scope
        self.key = (secret or _GROUP_KEY).encode()
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


@dataclass(frozen=True)
class Site:
    """What the masthead says the page is, in Chinese and English."""

    zh: str
    en: str


class PageAssets:
    """One page's files (the shared style sheet and the page's own script), served under
    ``prefix``, and the shell every answer of the page is rendered in."""

    def __init__(self, prefix: str, script: Path, site: Site) -> None:
        self.prefix = prefix
        self.script = script.name
        self.site = site
        self.files = {STYLE_SHEET: (ASSETS / STYLE_SHEET).read_bytes(),
                      script.name: script.read_bytes()}
        self.integrity = {name: sri(data) for name, data in self.files.items()}

    def route(self) -> web.RouteDef:
        return web.get(self.prefix + "/{name}", self.serve)

    async def serve(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        data = self.files.get(name)
        if data is None:
            return problem.problem(404, "not-found", "没有这个文件 (no such file)", name[:80])
        return web.Response(body=data, content_type=MEDIA[Path(name).suffix], charset="utf-8",
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    def render(self, title: str, main: str, status: int = 200,
               headers: dict[str, str] | None = None) -> web.Response:
        """A whole page around ``main`` (HTML the caller escaped), with the headers every
        citizen page carries."""
        html = SHELL.substitute(
            title=escape(title), main=main, static=self.prefix, script=self.script,
            css_sri=self.integrity[STYLE_SHEET], js_sri=self.integrity[self.script],
            site_zh=escape(self.site.zh), site_en=escape(self.site.en), foot=bilingual(*FOOT))
        return web.Response(text=html, status=status, content_type="text/html",
                            headers={**PAGE_HEADERS, **(headers or {})})
