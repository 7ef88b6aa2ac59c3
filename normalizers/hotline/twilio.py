"""``twilio``: Twilio voice status callbacks (and Twilio-compatible ones, e.g. TeXML).

Form-encoded (JSON is accepted too) ``CallSid``, ``From``, ``To``, ``CallStatus``,
``Direction``, ``CallDuration``, ``RecordingUrl``, ``Timestamp`` and ``SequenceNumber``.
A call sends several callbacks (initiated, ringing, in-progress, completed…), possibly
out of order: the gateway joins them by ``CallSid`` and ranks them by
``SequenceNumber``. A child leg (``ParentCallSid``: a ``<Dial>`` towards an agent) is
journaled and ignored; the parent is the citizen's call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from normalizers.common.phone import caller_to_e164
from normalizers.hotline.call_fields import Fields, parse_time, read_body
from normalizers.hotline.call_state import EVENT, CallEvent, single_record_draft

# CallStatus -> what it says: the call started ringing, was answered, or ended (how).
STATUSES = {
    "queued": "start", "initiated": "start", "ringing": "start",
    "in-progress": "answer", "answered": "answer", "completed": "end",
    "busy": "busy", "no-answer": "no_answer", "canceled": "abandoned", "failed": "failed",
}


def _timestamp(fields: Fields, ctx: NormalizerContext, default: datetime) -> datetime:
    text = fields.text("Timestamp", 64)
    if text is None:
        return default
    try:
        stamp = parsedate_to_datetime(text)  # RFC 2822, as Twilio sends it
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(UTC)
    except (TypeError, ValueError, IndexError):
        pass
    found = parse_time(text, ctx.timezone)  # ISO 8601, as compatible services send it
    if found is None:
        fields.fail("Timestamp", "invalid_time", "时间格式无效",
                    "Timestamp is neither RFC 2822 nor ISO 8601")
        return default
    return found


def parse(raw: RawRecord, ctx: NormalizerContext) -> CallEvent:
    fields = Fields(read_body(raw, ctx))
    call_id = fields.call_id("CallSid")
    status = fields.text("CallStatus", 20, required=True)
    if status is not None and status not in STATUSES:
        fields.fail("CallStatus", "unknown_status", "未知的通话状态",
                    f"unknown CallStatus {status!r}")
    direction = fields.text("Direction", 40) or "inbound"
    at = _timestamp(fields, ctx, raw.received_at)
    sequence = fields.whole("SequenceNumber") or 0
    duration = fields.whole("CallDuration")
    values: dict[str, Any] = {
        "direction": "outbound" if direction.startswith("outbound") else "inbound",
        "caller": caller_to_e164(fields.text("From", 64)),
        "callee": caller_to_e164(fields.text("To", 64)),
        "recording_ref": fields.text("RecordingUrl", 1000),
    }
    if fields.errors:
        raise Rejected(fields.errors)
    assert status is not None
    return _event(call_id, STATUSES[status], values, at, sequence, duration,
                  ignore="child_leg" if fields.text("ParentCallSid", 200) else None)


def _event(call_id: str, says: str, values: dict[str, Any], at: datetime, sequence: int,
           duration: int | None, ignore: str | None) -> CallEvent:
    fallbacks: dict[str, Any] = {}
    if says == "start":
        values["started_at"] = at
    elif says == "answer":
        values["answered_at"] = at
    else:
        values.update(ended_at=at, disposition=None if says == "end" else says)
    if says == "end":
        values["talk_seconds"] = duration
        fallbacks["answered_at"] = at - timedelta(seconds=duration or 0)
    return CallEvent(call_id, rank=(EVENT, sequence), fields=values, fallbacks=fallbacks,
                     final=says not in ("start", "answer"), ignore=ignore)


def normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    return single_record_draft(parse(raw, ctx), raw, ctx)
