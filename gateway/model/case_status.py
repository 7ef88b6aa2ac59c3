"""A status update the case platform sends back about one case (issue 14), checked the
same way whether it arrives by ``POST /v1/cases/{code}/status`` or as a line of
``minsheng cases import-status``: every broken rule is named at once, per field, in
Chinese with English beside it, so a platform fixes its export in one round.

A hand-written check rather than a pydantic model: the rules depend on each other
(``department`` with ``assigned``, ``text`` with ``replied``) and every message must name
the field in both languages, which pydantic's own messages do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from gateway.model.errors import FieldError, Rejected
from gateway.model.strict_json import has_lone_surrogate, safe_name

CaseStatus = Literal["accepted", "assigned", "replied", "closed", "reopened"]
CASE_STATUSES: tuple[CaseStatus, ...] = get_args(CaseStatus)
FIELDS = ("status", "at", "department", "text", "category")
MAX_CHARS = {"department": 200, "text": 10_000, "category": 200}


@dataclass(frozen=True)
class StatusUpdate:
    """One checked update: ``at`` is timezone-aware."""

    status: CaseStatus
    at: datetime
    department: str | None = None
    text: str | None = None
    category: str | None = None


def parse_update(data: Any) -> StatusUpdate:
    """``data`` (a JSON object or a CSV row as a dict) as a ``StatusUpdate``; ``Rejected``
    naming every broken rule otherwise. Empty strings count as absent (CSV cells)."""
    if not isinstance(data, dict):
        raise Rejected.one("body", "not_an_object", "请求体必须是 JSON 对象",
                           "the body must be a JSON object")
    errors = [FieldError(safe_name(str(key)), "unknown_field", f"未知字段 {safe_name(str(key))}",
                         f"unknown field {safe_name(str(key))!r} (known: {', '.join(FIELDS)})")
              for key in data if key not in FIELDS]
    texts = {name: _text(data.get(name), name, errors) for name in FIELDS}
    status = _status(texts["status"], errors)
    at = _moment(texts["at"], errors)
    if status == "assigned" and texts["department"] is None:
        errors.append(FieldError("department", "required", "状态为 assigned 时必须填写承办部门",
                                 "department is required with status 'assigned'"))
    if status == "replied" and texts["text"] is None:
        errors.append(FieldError("text", "required", "状态为 replied 时必须填写答复内容",
                                 "text is required with status 'replied'"))
    if errors or status is None or at is None:
        raise Rejected(errors or [FieldError("body", "invalid", "状态无效", "invalid status")])
    return StatusUpdate(status, at, texts["department"], texts["text"], texts["category"])


def _text(value: Any, name: str, errors: list[FieldError]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError(name, "not_a_string", f"{name} 必须是字符串",
                                 f"{name} must be a string"))
        return None
    value = value.strip()
    limit = MAX_CHARS.get(name, 64)
    if len(value) > limit:
        errors.append(FieldError(name, "too_long", f"{name} 超过 {limit} 个字符",
                                 f"{name} is longer than {limit} characters"))
        return None
    if has_lone_surrogate(value) or any(ord(c) < 32 and c not in "\n\t" for c in value):
        errors.append(FieldError(name, "bad_characters", f"{name} 含有无效字符",
                                 f"{name} holds control characters or lone surrogates"))
        return None
    return value or None


def _named(field: str, errors: list[FieldError]) -> bool:
    """Whether ``field`` has an error already (one reason per field is enough)."""
    return any(e.field == field for e in errors)


def _status(value: str | None, errors: list[FieldError]) -> CaseStatus | None:
    for known in CASE_STATUSES:
        if value == known:
            return known
    if _named("status", errors):
        return None
    wanted = " | ".join(CASE_STATUSES)
    errors.append(FieldError("status", "required" if value is None else "unknown_status",
                             f"状态必须是 {wanted} 之一", f"status must be one of {wanted}"))
    return None


def _moment(value: str | None, errors: list[FieldError]) -> datetime | None:
    """An ISO 8601 time with its UTC offset: a platform's local time without one would be
    read in whatever zone this machine has, so it is refused."""
    example = "2026-12-04T10:00:00+08:00"
    try:
        at = datetime.fromisoformat(value) if value is not None else None
    except ValueError:
        at = None
    if at is None and _named("at", errors):
        return None
    if at is None or at.tzinfo is None or at.utcoffset() is None:
        errors.append(FieldError("at", "required" if value is None else "bad_time",
                                 f"at 必须是带时区的 ISO 8601 时间，例如 {example}",
                                 f"at must be an ISO 8601 time with its offset, e.g. {example}"))
        return None
    if not 2000 <= at.year <= 2200:
        errors.append(FieldError("at", "out_of_range", "at 超出范围 (2000–2200)",
                                 "at is out of range (years 2000-2200)"))
        return None
    return at
