"""``generic_json``: our own JSON record of one finished call (docs/phone.md).

::

    {"call_id": "c-0001", "direction": "inbound", "caller": "13800138000",
     "callee": "12345", "started_at": "2024-05-01T09:30:00+08:00",
     "answered_at": "2024-05-01T09:30:08+08:00", "ended_at": "2024-05-01T09:34:40+08:00",
     "agent": "1024", "queue": "hotline", "recording_url": "https://…/c-0001.mp3",
     "disposition": "answered",
     "notes": {"subject": "…", "content": "…", "address": "…", "category": "…",
               "caller_name": "…", "phone": "…", "anonymous": false}}

Times are ISO 8601; without a zone they are read in the configured time zone. Unknown
fields are ignored. Errors name the field as written here.
"""

from __future__ import annotations

from typing import Any

from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from normalizers.common.phone import caller_to_e164
from normalizers.hotline.call_fields import TIMES, Fields, check_order, read_body
from normalizers.hotline.call_notes import NOTES_KEYS, notes_from
from normalizers.hotline.call_state import CDR, DISPOSITIONS, MISSED, CallEvent, single_record_draft


def parse(raw: RawRecord, ctx: NormalizerContext) -> CallEvent:
    fields = Fields(read_body(raw, ctx))
    call_id = fields.call_id("call_id")
    direction = fields.text("direction", 20) or "inbound"
    if direction not in ("inbound", "outbound"):
        fields.fail("direction", "invalid_direction", "呼叫方向须为 inbound 或 outbound",
                    "direction must be inbound or outbound")
    times = {key: fields.when(key, ctx.timezone) for key in TIMES}
    for key in ("started_at", "ended_at"):
        if fields.data.get(key) in (None, ""):
            fields.fail(key, "required", "不能为空", f"{key} is required")
    check_order(fields, times, {k: k for k in TIMES})
    disposition = _disposition(fields, answered=times["answered_at"] is not None)
    notes = _notes(fields)
    values: dict[str, Any] = {
        "direction": direction,
        "caller": caller_to_e164(fields.text("caller", 64)),
        "callee": caller_to_e164(fields.text("callee", 64)),
        **times,
        "agent": fields.text("agent", 100),
        "queue": fields.text("queue", 100),
        "recording_ref": fields.text("recording_url", 1000),
        "disposition": disposition,
    }
    if fields.errors:
        raise Rejected(fields.errors)
    return CallEvent(call_id, rank=(CDR, 0), fields=values, final=True, notes=notes,
                     fallbacks={"agent": notes.agent if notes else None})


def _disposition(fields: Fields, answered: bool) -> str | None:
    disposition = fields.text("disposition", 20)
    if disposition is None:
        return None
    if disposition not in DISPOSITIONS:
        fields.fail("disposition", "unknown_disposition", "未知的通话结果",
                    f"disposition must be one of {', '.join(DISPOSITIONS)}")
    elif disposition == "answered" and not answered:
        fields.fail("answered_at", "required", "已接听的来电须有接听时间",
                    "an answered call needs answered_at")
    elif disposition in MISSED and answered:
        fields.fail("disposition", "contradicts_answered_at", "通话结果与接听时间矛盾",
                    f"disposition {disposition} contradicts answered_at")
    return disposition


def _notes(fields: Fields) -> Any:
    data = fields.data.get("notes")
    if data is None:
        return None
    if not isinstance(data, dict):
        fields.fail("notes", "not_object", "通话小记须为 JSON 对象", "notes must be an object")
        return None
    inner = Fields(data, prefix="notes.")
    notes = notes_from(inner, NOTES_KEYS)
    fields.errors.extend(inner.errors)
    return notes


def normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    return single_record_draft(parse(raw, ctx), raw, ctx)
