"""Phone calls as the normalizers read them, joined, and the complaint of a call.

Every phone format (``generic_json``, ``freeswitch_json``, ``zammad_cti``, ``twilio``,
``call_notes``) reads one raw record into a ``CallEvent``: what that record says about
one call. The gateway joins the events of a call into a ``CallState`` (``merge`` is
pure, idempotent and independent of arrival order) and files one complaint per call
from the joined state with ``complaint_draft``. ``Notes``, what the agent wrote, lives
here because events and the joined state carry it; the ``call_notes`` format that reads
it from a request is ``normalizers.hotline.call_notes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from gateway.model.normalize import NormalizerContext
from gateway.model.schema import (
    CallInfo,
    ComplaintDraft,
    Disposition,
    Location,
    RawRecord,
    Reporter,
)
from normalizers.common.phone import InvalidPhone, to_e164
from normalizers.hotline.call_fields import TIMES

MISSED: tuple[Disposition, ...] = ("abandoned", "no_answer", "busy", "failed")
DISPOSITIONS: tuple[Disposition, ...] = ("answered", *MISSED)
DISPOSITION_ZH: dict[Disposition, str] = {
    "abandoned": "呼入放弃", "no_answer": "无人接听", "busy": "忙线", "failed": "呼叫失败",
    "answered": "已接听",
}
CDR, EVENT, NOTES = 2, 1, 0  # authority of a complete call record, a live event, notes


class Notes(BaseModel):
    """What the agent wrote about the call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str = ""
    content: str
    address: str | None = None
    category: str | None = None
    caller_name: str | None = None
    phone: str | None = None  # a callback number other than the caller id (E.164)
    anonymous: bool = False
    reply_wanted: bool = True
    confidential: bool = False  # the caller asked to keep their identity confidential
    agent: str | None = None


@dataclass(frozen=True)
class CallEvent:
    """What one raw record says about one call.

    ``fields`` are ``CallInfo`` fields (plus ``talk_seconds`` as a hint); for each field
    the event with the highest ``rank`` (authority, sequence) wins, ties keep the first.
    ``fallbacks`` only fill fields nothing else has stated. ``ignore`` names why the
    record is journaled but not joined (a FreeSWITCH B-leg).
    """

    call_id: str
    rank: tuple[int, int] = (CDR, 0)
    fields: Mapping[str, Any] = field(default_factory=dict)
    fallbacks: Mapping[str, Any] = field(default_factory=dict)
    final: bool = False
    notes: Notes | None = None
    ignore: str | None = None


# -- the joined call ---------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class CallState:
    """Everything known of one call, joined from its events; JSON in the ``calls`` table.

    ``seen`` records when the gateway first learned the call was answered, ended, or had
    notes (its own clock): the notes deadline runs from there.
    """

    call_id: str
    first_seen: str
    fields: dict[str, Any] = field(default_factory=dict)
    ranks: dict[str, list[int]] = field(default_factory=dict)
    final: bool = False
    notes: dict[str, Any] | None = None
    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, call_id: str, first_seen: datetime) -> CallState:
        return cls(call_id, _jsonable(first_seen))

    @classmethod
    def from_json(cls, text: str) -> CallState:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False, sort_keys=True)

    def merge(self, event: CallEvent, received_at: datetime) -> CallState:
        fields, ranks = dict(self.fields), {k: list(v) for k, v in self.ranks.items()}
        rank = list(event.rank)
        for name, value in event.fields.items():
            if value is not None and (name not in ranks or rank > ranks[name]):
                fields[name], ranks[name] = _jsonable(value), rank
        for name, value in event.fallbacks.items():
            if value is not None and name not in fields:
                fields[name], ranks[name] = _jsonable(value), [-1, -1]
        notes = event.notes.model_dump() if event.notes is not None else self.notes
        final = self.final or event.final
        seen, stamp = dict(self.seen), _jsonable(received_at)
        for key, happened in (("answered", "answered_at" in fields), ("ended", final),
                              ("notes", notes is not None)):
            if happened:
                seen.setdefault(key, stamp)
        return replace(self, fields=fields, ranks=ranks, final=final, notes=notes, seen=seen)

    @property
    def answered(self) -> bool:
        return "answered_at" in self.fields

    @property
    def missed(self) -> bool:
        return self.final and not self.answered

    @property
    def inbound(self) -> bool:
        return bool(self.fields.get("direction", "inbound") == "inbound")

    @property
    def disposition(self) -> Disposition | None:
        if self.answered:
            return "answered"
        stated = self.fields.get("disposition")
        for missed in MISSED:
            if stated == missed:
                return missed
        if self.final:
            return "abandoned" if self.inbound else "no_answer"
        return None

    @property
    def status(self) -> str:
        """ringing, answered (still talking), ended (answered and over) or missed."""
        if self.missed:
            return "missed"
        if self.answered:
            return "ended" if self.final else "answered"
        return "ringing"

    def call_info(self) -> CallInfo:
        f = self.fields
        started, answered, ended = _ordered(*(_time(f.get(k)) for k in TIMES))
        talk = _seconds(answered, ended) if ended else None
        if talk is None and answered is not None:
            talk = f.get("talk_seconds")
        notes_agent = (self.notes or {}).get("agent")
        return CallInfo(
            call_id=self.call_id, direction="outbound" if not self.inbound else "inbound",
            caller=f.get("caller"), callee=f.get("callee"), started_at=started,
            answered_at=answered, ended_at=ended, ring_seconds=_seconds(started, answered),
            talk_seconds=talk, agent=f.get("agent") or notes_agent, queue=f.get("queue"),
            recording_ref=f.get("recording_ref"), disposition=self.disposition,
        )


def _ordered(started: datetime | None, answered: datetime | None,
             ended: datetime | None) -> tuple[datetime | None, ...]:
    """Times from separate events (received out of order) put back in order."""
    known = [t for t in (started, answered, ended) if t is not None]
    if started is not None:
        started = min(known)
    if ended is not None:
        ended = max(known)
    if answered is not None:
        answered = min(max(answered, started or answered), ended or answered)
    return started, answered, ended


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds()))


# -- the complaint of a call -------------------------------------------------------------


def citizen_number(info: CallInfo) -> str | None:
    """The citizen's number: the caller of an inbound call, the callee of an outbound one."""
    return info.callee if info.direction == "outbound" else info.caller


def e164_or_none(number: str | None) -> str | None:
    if not number:
        return None
    try:
        return to_e164(number)
    except InvalidPhone:
        return None


def is_callback(state: CallState) -> bool:
    """A missed inbound call without notes: its case asks the centre to call back."""
    return state.missed and state.notes is None


def complaint_draft(state: CallState, source: str, received_at: datetime) -> ComplaintDraft:
    """The phone complaint of a call as known now (see docs/phone.md for the texts)."""
    info = state.call_info()
    notes = Notes.model_validate(state.notes) if state.notes else None
    subject, body, tags = _texts(state, info, notes)
    draft = ComplaintDraft(
        channel="phone", source=source, source_ref=state.call_id, received_at=received_at,
        reported_at=min(info.started_at or received_at, received_at),
        reporter=_reporter(info, notes), subject=subject, body=body,
        confidential=bool(notes and notes.confidential),
        location=Location(address=notes.address) if notes and notes.address else None,
        call=info, category_hint=notes.category if notes else None, tags=tags,
    )
    # Without notes the texts are the gateway's (``_texts``), not the citizen's matter.
    return draft if notes is not None else draft.mark_text_generated()


def _texts(state: CallState, info: CallInfo,
           notes: Notes | None) -> tuple[str, str, list[str]]:
    if notes is not None:
        subject = notes.subject or notes.content.split("\n")[0][:30]
        return subject, notes.content, ["missed"] if state.missed else []
    if state.missed:
        disposition = info.disposition or "abandoned"
        number = citizen_number(info) or "未知号码 (unknown number)"
        return (
            "回拨：未接来电 (call back: missed call)",
            f"市民来电未接通（{DISPOSITION_ZH[disposition]}），请回拨 {number}。\n"
            f"Missed call ({disposition}); please call back {number}.",
            ["callback", disposition],
        )
    if state.answered:
        return ("来电待补通话小记 (call awaiting notes)",
                "来电已接听，坐席的通话小记尚未送达。\n"
                "The call was answered; the agent's notes have not arrived yet.",
                ["notes_pending"])
    return ("来电进行中 (call in progress)", "来电尚未结束。\nThe call has not ended yet.",
            ["in_progress"])


def _reporter(info: CallInfo, notes: Notes | None) -> Reporter:
    if notes is not None and notes.anonymous:
        return Reporter(anonymous=True, reply_wanted=False)
    phone = (notes.phone if notes else None) or e164_or_none(citizen_number(info))
    return Reporter(name=notes.caller_name if notes else None, phone=phone,
                    reply_wanted=notes.reply_wanted if notes else True)


def single_record_draft(event: CallEvent, raw: RawRecord, ctx: NormalizerContext,
                        ) -> ComplaintDraft:
    """The dry run of one record: the complaint it would make if it were the whole call."""
    state = CallState.start(event.call_id, raw.received_at).merge(event, raw.received_at)
    draft = complaint_draft(state, ctx.source, raw.received_at)
    if event.ignore:
        draft.tags.append(f"ignored:{event.ignore}")
    return draft
