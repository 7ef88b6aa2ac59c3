"""The standard every complaint meets, whatever its channel.

Channel-specific rules (a web form's contact fields, a CDR's call id) live in each
normalizer, which names its own input fields; this is the last gate before a case.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic_core import PydanticSerializationError

from gateway.model.errors import FieldError, Rejected
from gateway.model.schema import ComplaintDraft
from gateway.model.strict_json import lone_surrogate_at

MAX_BODY_CHARS = 50_000
MAX_SUBJECT_CHARS = 500
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CLOCK_SKEW = timedelta(minutes=10)  # clocks of phone systems and web servers drift


def validate_draft(draft: ComplaintDraft) -> None:
    errors: list[FieldError] = []
    _refuse_lone_surrogates(draft)
    if not draft.body.strip():
        errors.append(FieldError("body", "required", "投诉内容不能为空", "body must not be empty"))
    if len(draft.body) > MAX_BODY_CHARS:
        errors.append(FieldError(
            "body", "too_long", f"内容超过 {MAX_BODY_CHARS} 字",
            f"body is longer than {MAX_BODY_CHARS} characters",
        ))
    if len(draft.subject) > MAX_SUBJECT_CHARS:
        errors.append(FieldError(
            "subject", "too_long", f"标题超过 {MAX_SUBJECT_CHARS} 字",
            f"subject is longer than {MAX_SUBJECT_CHARS} characters",
        ))
    if draft.reporter.phone is not None and not _E164.match(draft.reporter.phone):
        errors.append(FieldError(
            "reporter.phone", "invalid_phone", "电话号码不是 E.164 格式",
            "reporter phone is not in E.164 form",
        ))
    if draft.reported_at > draft.received_at + CLOCK_SKEW:
        errors.append(FieldError(
            "reported_at", "in_future", "反映时间晚于接收时间", "reported_at is after received_at",
        ))
    if errors:
        raise Rejected(errors)


def _refuse_lone_surrogates(draft: ComplaintDraft) -> None:
    """The gateway's one policy for a lone surrogate in any text field of any source:
    refused, naming the field (docs/input-limits.md). The case document is serialized to
    UTF-8 JSON anyway, so that is the cheap test (5 µs); the field is looked for only
    when it fails."""
    try:
        draft.model_dump_json()
    except PydanticSerializationError:
        where = lone_surrogate_at(draft.model_dump())
        if where is None:  # not a surrogate: whatever it is, the pipeline quarantines it
            raise
        raise Rejected.one(where, "lone_surrogate", "含有无效的 Unicode 代理字符",
                           f"{where} holds a lone UTF-16 surrogate (U+D800..U+DFFF)") from None

