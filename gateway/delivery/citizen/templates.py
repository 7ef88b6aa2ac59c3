"""The text a citizen receives: a template in Chinese (English optional) with the
placeholders ``{case_code}``, ``{lookup_url}`` and ``{received_at}``.

Why ``str.format`` syntax checked at load: an operator edits these in the config file,
and a typo (``{case_id}``) must stop ``check-config``, naming the placeholder, rather
than fail each delivery later. Only bare names are allowed (no attribute, index, format
spec or conversion), so a template can never reach into anything but the three values.

Without ``api.public_url`` there is no link: every line holding ``{lookup_url}`` is
left out of the message (so "查询进度：{lookup_url}" on its own line disappears whole).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

PLACEHOLDERS = ("case_code", "lookup_url", "received_at")
LOOKUP_PATH = "/lookup"
SAMPLE_CODE_SEQUENCE = 1  # ``minsheng notify test`` sends a code with this sequence


def check_template(text: str) -> str:
    """``text`` if every placeholder in it is known and bare; else ``ValueError`` naming it."""
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as exc:  # a lone "{" or "}"
        raise ValueError(f"not a valid template ({exc}); write {{{{ and }}}} for braces") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}} (known: {known})")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}}: no format spec or conversion allowed")
    return text


class MessageTemplate(BaseModel):
    """One message: ``zh`` (required) and ``en`` (optional, sent below the Chinese)."""

    model_config = ConfigDict(extra="forbid")

    zh: str = Field(min_length=1, max_length=2000)
    en: str | None = Field(default=None, max_length=2000)

    @field_validator("zh", "en")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)

    def render(self, values: NoticeValues) -> str:
        """The message text: the Chinese, then (if configured) a blank line and the English."""
        parts = [_fill(self.zh, values)]
        if self.en:
            parts.append(_fill(self.en, values))
        return "\n\n".join(p for p in parts if p)


def _fill(template: str, values: NoticeValues) -> str:
    lines = template.splitlines()
    if not values.lookup_url:
        lines = [line for line in lines if "{lookup_url}" not in line]
    return "\n".join(lines).format_map(values.as_dict()).strip()


@dataclass(frozen=True)
class NoticeValues:
    """What the placeholders stand for in one message."""

    case_code: str
    lookup_url: str  # "" without api.public_url
    received_at: str  # local time, "2026-11-26 09:30"

    def as_dict(self) -> dict[str, str]:
        return {"case_code": self.case_code, "lookup_url": self.lookup_url,
                "received_at": self.received_at}

    @classmethod
    def for_case(cls, case_code: str, received_at: datetime, public_url: str | None,
                 tz: ZoneInfo) -> NoticeValues:
        return cls(case_code, lookup_url(public_url, case_code),
                   received_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"))


def lookup_url(public_url: str | None, case_code: str) -> str:
    """The look-up page for ``case_code`` (``api.public_url`` + ``/lookup?case_code=``);
    ``""`` without a public URL. Case codes are ``[A-Z0-9-]``: nothing to escape."""
    if not public_url:
        return ""
    return f"{public_url.rstrip('/')}{LOOKUP_PATH}?case_code={case_code}"


DEFAULT_SMS = MessageTemplate(
    zh="【12345】您反映的问题已于{received_at}受理，编号{case_code}，请记下以便查询。\n"
       "查询进度：{lookup_url}",
    en="Received {received_at}, case code {case_code}. Follow it: {lookup_url}",
)
DEFAULT_EMAIL = MessageTemplate(
    zh="您好：\n\n您于{received_at}发来的邮件已受理，案件编号：{case_code}\n"
       "请保存此编号，以便查询办理进度。\n查询进度：{lookup_url}\n\n"
       "此邮件由系统自动发送，请勿直接回复。",
    en="Hello,\n\nYour mail of {received_at} was received as case {case_code}.\n"
       "Keep this code to follow your case.\nFollow it: {lookup_url}\n\n"
       "This reply was sent automatically; please do not answer it.",
)
