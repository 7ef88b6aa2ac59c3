"""The citizen page's HTML: the form (with the citizen's input and each error beside its
field), the result with the case code, and a refusal.

Built from the source's options and the normalizer's messages (``normalizers.web_form``,
``adapters.web_mailbox.options``), never from copies: the limits, labels and error texts
the browser shows are the ones the API answers with. Everything the citizen typed is
escaped; the page has no inline script or style (its CSP forbids both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Literal

from adapters.web_mailbox.options import (
    WebMailboxOptions,
    file_too_large,
    too_many_files,
    type_not_allowed,
)
from gateway.model.errors import FieldError
from gateway.support.web_page import CSRF_FIELD, bilingual
from normalizers.web_form import (
    CONTACT_REQUIRED,
    EMAIL_PATTERN,
    INVALID_EMAIL,
    LABELS,
    required_error,
    too_long_error,
)

if TYPE_CHECKING:
    from gateway.intake.pipeline import Outcome

InputKind = Literal["textarea", "text", "tel", "email"]
LEAD = ("提交后会得到案件编号，请记下以便查询。",
        "After sending you get a case code: keep it to follow your case.")
ANONYMOUS = ("匿名反映（可不留联系方式）", "Anonymous (no contact needed)")
CONFIDENTIAL = ("请为我保密", "Keep my identity confidential")
CONFIDENTIAL_HINT = ("您的姓名和联系方式只交给承办单位，不出现在其他任何地方。",
                     "Your name and contact details go only to the office handling "
                     "your case, nowhere else.")
KEEP_THE_CODE = ("请把编号写下来或截屏保存，查询办理进度时需要它。",
                 "Write the code down or take a screenshot: you need it to follow your case.")
ANSWERED: dict[Outcome, tuple[str, str]] = {
    "new": ("提交成功", "Submitted"),
    "repeat": ("提交成功", "Submitted"),
    "related": ("提交成功", "Submitted"),
    "replay": ("这件事已经提交过", "This was submitted already"),
}


@dataclass(frozen=True)
class TextField:
    """One text field of the form: its API name, English label, hint and input kind."""

    name: str
    en: str
    kind: InputKind
    hint: str = ""
    autocomplete: str = "off"


def text_fields(options: WebMailboxOptions) -> list[tuple[TextField, int]]:
    """The form's text fields with their limits, in the order a citizen fills them."""
    return [
        (TextField("content", "What happened", "textarea",
                   "请写明时间、地点和经过。 <span lang=\"en\">When, where and what "
                   "happened.</span>"), options.max_content_chars),
        (TextField("subject", "Subject", "text",
                   "可不填，默认取内容第一行。 <span lang=\"en\">Optional: the first line "
                   "of the text is used.</span>"), options.max_subject_chars),
        (TextField("address", "Address", "text", "事情发生的地点。 <span lang=\"en\">Where "
                   "it happened.</span>", "street-address"), options.max_address_chars),
        (TextField("name", "Name", "text", autocomplete="name"), options.max_name_chars),
        (TextField("phone", "Phone", "tel", "手机或带区号的固定电话。 <span lang=\"en\">A "
                   "mobile, or a landline with its area code.</span>", "tel"), 32),
        (TextField("email", "E-mail", "email", autocomplete="email"), 254),
    ]


def _messages(*errors: FieldError) -> str:
    """Messages for the page's script, keyed by code: [Chinese, English]."""
    return escape(json.dumps({e.code: [e.zh, e.en] for e in errors}, ensure_ascii=False))


def _error_line(name: str, errors: dict[str, FieldError]) -> str:
    error = errors.get(name)
    text = bilingual(error.zh, error.en) if error else ""
    return f'<p class="error" id="err-{name}" aria-live="polite">{text}</p>'


def _text_field(spec: TextField, limit: int, value: str, errors: dict[str, FieldError]) -> str:
    required = spec.name == "content"
    checks = [too_long_error(spec.name, limit)]
    if required:
        checks.append(required_error(spec.name))
    if spec.name == "email":
        checks.append(INVALID_EMAIL)
    if spec.name == "phone":
        checks.append(CONTACT_REQUIRED)
    mark = ' <span class="req">必填 <span lang="en">required</span></span>' if required else ""
    hint = f"{spec.hint} " if spec.hint else ""
    limit_text = f"不超过 {limit} 字 <span lang=\"en\">at most {limit} characters</span>"
    attrs = (f'id="f-{spec.name}" name="{spec.name}" maxlength="{limit}" '
             f'aria-describedby="hint-{spec.name} err-{spec.name}" '
             f'data-max="{limit}" data-messages="{_messages(*checks)}" '
             f'autocomplete="{spec.autocomplete}"'
             + (" required" if required else "")
             + (' aria-invalid="true"' if spec.name in errors else ""))
    if spec.name == "email":
        attrs += f' data-pattern="{escape(EMAIL_PATTERN)}"'
    if spec.kind == "textarea":
        control = f'<textarea {attrs} rows="8">{escape(value)}</textarea>'
    else:
        control = f'<input type="{spec.kind}" {attrs} value="{escape(value)}">'
    return (f'<div class="field" data-field="{spec.name}">'
            f'<label for="f-{spec.name}">{escape(LABELS[spec.name])} '
            f'<span lang="en">{escape(spec.en)}</span>{mark}</label>'
            f'<p class="hint" id="hint-{spec.name}">{hint}{limit_text}</p>'
            f"{control}{_error_line(spec.name, errors)}</div>")


def _checkbox(name: str, zh: str, en: str, checked: bool,
              hint: tuple[str, str] | None = None) -> str:
    """A yes/no field: a hidden ``false`` first, so an unticked box still says no (the
    reader keeps a repeated field's last value). ``hint``: a line under the label that
    the box is described by (screen readers read it with the box)."""
    tick = " checked" if checked else ""
    described = f' aria-describedby="hint-{name}"' if hint else ""
    note = f'<p class="hint" id="hint-{name}">{bilingual(*hint)}</p>' if hint else ""
    return (f'<div class="field check"><input type="hidden" name="{name}" value="false">'
            f'<input type="checkbox" id="f-{name}" name="{name}" value="true"{tick}'
            f'{described}><label for="f-{name}">{bilingual(zh, en)}</label>{note}</div>')


def _file_field(options: WebMailboxOptions, errors: dict[str, FieldError]) -> str:
    if options.max_attachments == 0:
        return ""
    rules = json.dumps({
        "max_files": options.max_attachments, "max_bytes": options.max_attachment_bytes,
        "types": options.allowed_media_types,
        "messages": {e.code: [e.zh, e.en] for e in (
            too_many_files(options), file_too_large(options), type_not_allowed("{type}"))},
    }, ensure_ascii=False)
    kept = " 如有附件，请重新选择。 <span lang=\"en\">Please choose your files again.</span>" \
        if errors else ""
    return (f'<div class="field" data-field="attachments">'
            f'<label for="f-attachments">附件 <span lang="en">Attachments</span></label>'
            f'<p class="hint" id="hint-attachments">照片、文档等，最多 {options.max_attachments} '
            f'个，每个不超过 {options.max_attachment_mb:g} MB。 <span lang="en">Photos or '
            f'documents: at most {options.max_attachments}, each up to '
            f'{options.max_attachment_mb:g} MB.</span>{kept}</p>'
            f'<input type="file" id="f-attachments" name="attachments" multiple '
            f'accept="{escape(",".join(options.allowed_media_types))}" '
            f'aria-describedby="hint-attachments err-attachments" data-rules="{escape(rules)}"'
            + (' aria-invalid="true"' if "attachments" in errors else "")
            + f">{_error_line('attachments', errors)}</div>")


def _summary(errors: list[FieldError], shown: set[str]) -> str:
    """Every error at the top, each linking to its field; errors of no field here (an
    expired page, a value the form has no box for) are only here."""
    if not errors:
        return '<div id="summary" class="summary" hidden tabindex="-1"></div>'
    items = "".join(
        f'<li><a href="#f-{e.field}">{bilingual(e.zh, e.en)}</a></li>' if e.field in shown
        else f"<li>{bilingual(e.zh, e.en)}</li>" for e in errors)
    return (f'<div id="summary" class="summary" role="alert" tabindex="-1">'
            f"<h2>{bilingual('请修改以下内容', 'Please correct the following')}</h2>"
            f"<ul>{items}</ul></div>")


def form_main(options: WebMailboxOptions, action: str, token: str, values: dict[str, str],
              errors: list[FieldError]) -> str:
    """The form, filled with ``values`` and showing ``errors`` (first of each field)."""
    by_field: dict[str, FieldError] = {}
    for error in errors:
        by_field.setdefault(error.field, error)
    fields = text_fields(options)
    shown = {spec.name for spec, _ in fields} | {"attachments"}
    anonymous = values.get("anonymous", "false") == "true"
    reply = values.get("reply_wanted", "true") == "true"
    confidential = values.get("confidential", "false") == "true"
    body = "".join(_text_field(spec, limit, values.get(spec.name, ""), by_field)
                   for spec, limit in fields)
    return (
        f"<h1>{bilingual('我要写信', 'Write to the 12345 hotline')}</h1>"
        f'<p class="lead">{bilingual(*LEAD)}</p>'
        f"{_summary(errors, shown)}"
        f'<form id="mailbox" method="post" action="{escape(action)}" '
        f'enctype="multipart/form-data" accept-charset="utf-8">'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">'
        f'<input type="hidden" name="submission_id" '
        f'value="{escape(values.get("submission_id", ""))}">'
        f"{body}"
        f"{_checkbox('anonymous', *ANONYMOUS, anonymous)}"
        f"{_checkbox('reply_wanted', '需要回复', 'I want a reply', reply)}"
        f"{_checkbox('confidential', *CONFIDENTIAL, confidential, CONFIDENTIAL_HINT)}"
        f"{_file_field(options, by_field)}"
        f'<button type="submit" id="send">{bilingual("提交", "Send")}</button>'
        "</form>")


def result_main(outcome: Outcome, case_code: str | None, page_path: str) -> str:
    """The answer to a filed submission: the case code in large type, a copy button (the
    script shows it) and the advice to keep the code."""
    back = f'<p><a href="{escape(page_path)}">{bilingual("再写一封", "Write another")}</a></p>'
    if case_code is None:  # kept in the quarantine: filed, the code comes once it is read
        return (f"<h1>{bilingual('已收到', 'Received')}</h1><p>"
                + bilingual("您的来信已安全保存，正在处理，暂时无法给出案件编号。",
                            "Your letter is safely kept and being processed; its case "
                            "code is not available yet.") + f"</p>{back}")
    zh, en = ANSWERED.get(outcome, ANSWERED["new"])
    return (
        f'<h1 id="done">{bilingual(zh, en)}</h1>'
        f'<p class="code-label" id="code-label">{bilingual("您的案件编号", "Your case code")}</p>'
        f'<p class="case-code" id="case-code" aria-labelledby="code-label">{escape(case_code)}</p>'
        f'<p><button type="button" id="copy" hidden>{bilingual("复制编号", "Copy the code")}'
        f'</button> <span id="copied" class="note" aria-live="polite"></span></p>'
        f'<p class="keep">{bilingual(*KEEP_THE_CODE)}</p>'
        f"{back}")


def refusal_main(title: str, detail: str, page_path: str) -> str:
    """A refusal that is no field's fault (too fast, too big, malformed)."""
    return (f'<h1>{escape(title)}</h1><p role="alert">{escape(detail)}</p>'
            f'<p><a href="{escape(page_path)}">{bilingual("返回", "Back")}</a></p>')
