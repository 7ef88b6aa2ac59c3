"""``zammad_cti``: the generic CTI events ``newCall``, ``answer`` and ``hangup``.

A phone system posts one event at a time, JSON or form-encoded (a list such as the
agents being rung comes as repeated ``user[]`` keys), with ``event``, ``from``, ``to``,
``direction`` (``in``/``out``), ``callId``, ``user``, ``queue``, ``answeringNumber`` and
(hangup) ``cause``. Events carry no times: the gateway's receipt time stands for each.
They may come twice or out of order; the gateway joins them by ``callId``, ranking
``newCall`` < ``answer`` < ``hangup``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from normalizers.common.phone import caller_to_e164
from normalizers.hotline.call_fields import Fields, read_body
from normalizers.hotline.call_state import EVENT, CallEvent, single_record_draft

EVENTS = {"newCall": 0, "answer": 1, "hangup": 2}
_CAUSES = {"cancel": "abandoned", "noAnswer": "no_answer", "busy": "busy",
           "congestion": "failed", "notFound": "failed"}
_DIRECTIONS = {"in": "inbound", "out": "outbound"}


def _user(fields: Fields) -> str | None:
    """The agent named by ``user`` (a name or a list of names: the first one)."""
    value = fields.data.get("user")
    if isinstance(value, list):
        value = next((str(v) for v in value if str(v).strip()), None)
    return Fields({"user": value}).text("user", 100) if value is not None else None


def parse(raw: RawRecord, ctx: NormalizerContext) -> CallEvent:
    fields = Fields(read_body(raw, ctx))
    event = fields.text("event", 20, required=True)
    if event is not None and event not in EVENTS:
        fields.fail("event", "unknown_event", "未知的事件名称",
                    f"unknown event {event!r}: expected newCall, answer or hangup")
    call_id = fields.call_id("callId")
    direction = fields.text("direction", 10)
    if direction is not None and direction not in _DIRECTIONS:
        fields.fail("direction", "invalid_direction", "呼叫方向须为 in 或 out",
                    "direction must be in or out")
    cause = fields.text("cause", 40)
    answering = fields.text("answeringNumber", 100)
    values: dict[str, Any] = {
        "direction": _DIRECTIONS.get(direction or "in"),
        "caller": caller_to_e164(fields.text("from", 64)),
        "callee": caller_to_e164(fields.text("to", 64)),
        "queue": fields.text("queue", 100),
    }
    if fields.errors:
        raise Rejected(fields.errors)
    assert event is not None
    return _event(event, call_id, values, raw.received_at, _user(fields), answering, cause)


def _event(event: str, call_id: str, values: dict[str, Any], at: datetime, user: str | None,
           answering: str | None, cause: str | None) -> CallEvent:
    fallbacks: dict[str, Any] = {}
    if event == "newCall":
        values["started_at"] = at
    elif event == "answer":
        values.update(answered_at=at, agent=user or answering)
    else:
        values.update(ended_at=at, disposition=_CAUSES.get(cause or ""))
        if answering:  # answered, even if the answer event is late or lost
            fallbacks = {"answered_at": at, "agent": user or answering}
    return CallEvent(call_id, rank=(EVENT, EVENTS[event]), fields=values,
                     fallbacks=fallbacks, final=event == "hangup")


def normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    return single_record_draft(parse(raw, ctx), raw, ctx)
