"""The look-up page: ``GET /lookup`` (the form, the code prefilled from ``?case_code=``)
and ``POST /lookup`` (the plain form post, answered with HTML: the history, the form
again with each error beside its field, or the one neutral message when nothing matches).

It works without JavaScript; its script (``static/lookup.js``) checks the fields before
sending, with the server's own messages. The shell, style, headers and CSRF tokens are
every citizen page's (gateway/support/web_page.py). What the citizen typed is never
shown back but the case code: the digits or the address stay out of the page.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.intake.body_budget import read_bounded
from gateway.model.errors import FieldError, Rejected
from gateway.server.lookup import NO_MATCH, LookupAnswer, LookupService, parse_query
from gateway.support.lookup_config import LookupConfig
from gateway.support.web_page import (
    CSRF_FIELD,
    STALE_PAGE,
    CsrfTokens,
    PageAssets,
    Site,
    bilingual,
)

PATH = "/lookup"
STATIC = "/lookup/static"
SCRIPT = Path(__file__).parent / "static" / "lookup.js"
SITE = Site("办理进度查询", "case look-up")
FORM_MAX_BYTES = 4096
TITLE = ("查询办理进度", "Follow your case")
LEAD = ("请输入案件编号，以及提交时所留电话号码的后四位；没有留电话的，请填写所留的电子邮箱。",
        "Enter the case code and the last four digits of the phone number you gave; if you "
        "gave no phone number, the e-mail address instead.")
# (name, Chinese label, English label, hint zh, hint en, input attributes)
FIELDS = [
    ("case_code", "案件编号", "Case code", "例如 CY-20191120-W-000123-7",
     "e.g. CY-20191120-W-000123-7",
     'type="text" maxlength="64" autocomplete="off" autocapitalize="characters" '
     'spellcheck="false" required'),
    ("phone_last4", "电话号码后四位", "Last four digits of the phone number",
     "提交时所留电话号码的最后 4 位数字。", "The last 4 digits of the number you gave.",
     'type="text" inputmode="numeric" maxlength="4" pattern="[0-9]{4}" autocomplete="off"'),
    ("email", "或：电子邮箱", "Or: e-mail address", "没有留电话时填写。",
     "Only if you gave no phone number.", 'type="email" maxlength="254" autocomplete="email"'),
]
# The messages the script shows, the server's own (gateway/server/lookup.py).
SCRIPT_MESSAGES = {
    "required_code": ["请填写案件编号", "the case code is required"],
    "required_contact": ["请填写电话号码后四位（或电子邮箱）",
                         "give the last four digits of the phone number (or the e-mail "
                         "address)"],
    "four_digits": ["请填写 4 位数字", "four digits, e.g. 8000"],
    "one_of": ["电话号码后四位和电子邮箱只填一项",
               "give the last four digits or the e-mail address, not both"],
}


def _field(name: str, zh: str, en: str, hint_zh: str, hint_en: str, attrs: str,
           value: str, error: FieldError | None) -> str:
    message = bilingual(error.zh, error.en) if error else ""
    invalid = ' aria-invalid="true"' if error else ""
    return (f'<div class="field" data-field="{name}">'
            f'<label for="f-{name}">{bilingual(zh, en)}</label>'
            f'<p class="hint" id="hint-{name}">{bilingual(hint_zh, hint_en)}</p>'
            f'<input id="f-{name}" name="{name}" {attrs} value="{escape(value)}" '
            f'aria-describedby="hint-{name} err-{name}"{invalid}>'
            f'<p class="error" id="err-{name}" aria-live="polite">{message}</p></div>')


def _summary(errors: list[FieldError], notice: tuple[str, str] | None) -> str:
    """Every error at the top (each linking to its field), or the neutral message."""
    if notice is not None:
        return (f'<div id="summary" class="summary" role="alert" tabindex="-1">'
                f'<p id="no-match">{bilingual(*notice)}</p></div>')
    if not errors:
        return '<div id="summary" class="summary" hidden tabindex="-1"></div>'
    shown = {name for name, *_ in FIELDS}
    items = "".join(
        f'<li><a href="#f-{e.field}">{bilingual(e.zh, e.en)}</a></li>' if e.field in shown
        else f"<li>{bilingual(e.zh, e.en)}</li>" for e in errors)
    return (f'<div id="summary" class="summary" role="alert" tabindex="-1">'
            f"<h2>{bilingual('请修改以下内容', 'Please correct the following')}</h2>"
            f"<ul>{items}</ul></div>")


def form_main(token: str, code: str, errors: list[FieldError],
              notice: tuple[str, str] | None = None) -> str:
    by_field: dict[str, FieldError] = {}
    for error in errors:
        by_field.setdefault(error.field, error)
    fields = "".join(_field(name, zh, en, hz, he, attrs, code if name == "case_code" else "",
                            by_field.get(name)) for name, zh, en, hz, he, attrs in FIELDS)
    messages = escape(json.dumps(SCRIPT_MESSAGES, ensure_ascii=False))
    return (f"<h1>{bilingual(*TITLE)}</h1>"
            f'<p class="lead">{bilingual(*LEAD)}</p>'
            f"{_summary(errors, notice)}"
            f'<form id="lookup" method="post" action="{PATH}" accept-charset="utf-8" '
            f'data-messages="{messages}" novalidate>'
            f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">'
            f"{fields}"
            f'<button type="submit" id="send">{bilingual("查询", "Look up")}</button>'
            "</form>")


def _when(text: str, tz: ZoneInfo) -> str:
    """A time as the citizen reads it (local, to the minute) in a ``<time>`` element."""
    try:
        local = datetime.fromisoformat(text).astimezone(tz)
    except ValueError:
        return escape(text)
    return f'<time datetime="{escape(text)}">{local.strftime("%Y-%m-%d %H:%M")}</time>'


def result_main(answer: LookupAnswer, tz: ZoneInfo) -> str:
    data = answer.as_json()
    steps = "".join(
        f'<li><span class="status">{bilingual(e["label_zh"], e["label_en"])}</span> '
        f'{_when(e["at"], tz)}'
        + (f' <span class="department">{escape(e["department"])}</span>'
           if e["department"] else "") + "</li>"
        for e in data["status_history"])
    return (f'<h1 id="done" tabindex="-1">{bilingual("办理进度", "Progress of your case")}</h1>'
            f'<dl class="facts">'
            f'<dt>{bilingual("案件编号", "Case code")}</dt>'
            f'<dd class="case-code" id="case-code">{escape(answer.case_code)}</dd>'
            f'<dt>{bilingual("收到时间", "Received")}</dt>'
            f'<dd id="received">{_when(answer.received_at, tz)}</dd>'
            f'<dt>{bilingual("渠道", "Channel")}</dt>'
            f'<dd id="channel">{bilingual(data["channel_zh"], data["channel_en"])}</dd></dl>'
            f'<h2>{bilingual("办理记录", "History")}</h2>'
            f'<ol id="history" class="history">{steps}</ol>'
            f'<p><a href="{PATH}">{bilingual("查询其他案件", "Look up another case")}</a></p>')


def refusal_main(title: str, detail: str) -> str:
    return (f'<h1>{escape(title)}</h1><p role="alert">{escape(detail)}</p>'
            f'<p><a href="{PATH}">{bilingual("返回", "Back")}</a></p>')


class LookupPage:
    """The page's routes and every answer it renders."""

    def __init__(self, service: LookupService, config: LookupConfig) -> None:
        self.service = service
        self.assets = PageAssets(STATIC, SCRIPT, SITE)
        secret = config.csrf_secret.get_secret_value() if config.csrf_secret else None
        self.csrf = CsrfTokens("lookup", secret, config.csrf_max_age_s)

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self.get), web.post(PATH, self.post), self.assets.route()]

    def form(self, code: str, errors: list[FieldError], status: int = 200,
             notice: tuple[str, str] | None = None) -> web.Response:
        title = "查询办理进度 Follow your case" if not errors and notice is None \
            else "请核对 Please check · 查询办理进度"
        return self.assets.render(title, form_main(self.csrf.issue(), code, errors, notice),
                                  status)

    async def get(self, request: web.Request) -> web.Response:
        code = request.query.get("case_code", "")[:64].strip()
        return self.form(code, [])

    async def post(self, request: web.Request) -> web.Response:
        refused = self.service.client_refusal(request)
        if refused is not None:
            return self._refusal(refused)
        body = await read_bounded(request, FORM_MAX_BYTES)
        fields = _form_fields(body or b"")
        code = fields.get("case_code", "")[:64].strip()
        if not self.csrf.valid(fields.pop(CSRF_FIELD, "")):
            return self.form(code, [STALE_PAGE], 403)
        try:
            query = parse_query(fields, self.service.region)
        except Rejected as exc:
            return self.form(code, exc.errors, 422)
        refused = self.service.code_refusal(query)
        if refused is not None:
            return self._refusal(refused)
        answer = await self.service.find(query)
        if answer is None:
            return self.form(query.case_code, [], 404, NO_MATCH)
        return self.assets.render("办理进度 Progress · 查询办理进度",
                                  result_main(answer, self.service.tz))

    def _refusal(self, answer: web.Response) -> web.Response:
        """A problem+json refusal (the rate limit) as a page, same status and
        ``Retry-After``."""
        assert isinstance(answer.body, bytes)
        body = json.loads(answer.body)
        keep = {k: v for k, v in answer.headers.items() if k == "Retry-After"}
        return self.assets.render(body.get("title", ""), refusal_main(
            body.get("title", ""), body.get("detail") or ""), answer.status, keep)


def _form_fields(body: bytes) -> dict[str, str]:
    """The form's fields (a repeated one: its last value); nothing when the body is not
    a UTF-8 form, so the fields are then named missing."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16,
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v for k, v in pairs if k in {CSRF_FIELD, *(name for name, *_ in FIELDS)}}
