"""Phone calls as the normalizers read them, and the agent desktop's call notes.

Every phone format (``generic_json``, ``freeswitch_json``, ``zammad_cti``, ``twilio``)
reads one raw record into a ``CallEvent``: what that record says about one call. The
gateway joins the events of a call into a ``CallState`` (``merge`` is pure, idempotent
and independent of arrival order) and files one complaint per call from the joined
state with ``complaint_draft``. The notes an agent writes (subject, content, address,
category, the caller's name) arrive on their own at
``POST /intake/<source>/calls/<call_id>/notes`` and are read here too (format
``call_notes``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from gateway.errors import FieldError, Rejected
from gateway.normalize import NormalizerContext
from gateway.schema import CallInfo, ComplaintDraft, Location, RawRecord, Reporter
from normalizers.phone import InvalidPhone, to_e164
from normalizers.text import clean_line, clean_text

MISSED = ("abandoned", "no_answer", "busy", "failed")
DISPOSITIONS = ("answered", *MISSED)
DISPOSITION_ZH = {"abandoned": "呼入放弃", "no_answer": "无人接听", "busy": "忙线",
                  "failed": "呼叫失败", "answered": "已接听"}
TIMES = ("started_at", "answered_at", "ended_at")
CDR, EVENT, NOTES = 2, 1, 0  # authority of a complete call record, a live event, notes
_TRUE = {"1", "true", "yes", "on", "是"}
_FALSE = {"0", "false", "no", "off", "否", ""}


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
    agent: str | None = None


NOTES_FIELDS = {"subject": 200, "content": 5000, "address": 200, "category": 100,
                "caller_name": 50, "agent": 100}


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


# -- reading raw bodies ----------------------------------------------------------------


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def read_body(raw: RawRecord) -> dict[str, Any]:
    """A JSON object or a url-encoded form (``key[]`` repeated: a list) as a dict."""
    try:
        text = raw.payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Rejected.one("body", "not_utf8", "请求体须为 UTF-8 编码",
                           "the body is not UTF-8") from None
    kind = media_type(raw.content_type)
    if kind == "application/json" or kind.endswith("+json") or text.lstrip().startswith("{"):
        return _json_object(text)
    if kind in ("application/x-www-form-urlencoded", "text/plain", "") or "=" in text:
        return form_fields(text)
    raise Rejected.one("body", "unsupported_media_type", "请求体须为 JSON 或表单",
                       "the body must be JSON or application/x-www-form-urlencoded")


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise Rejected.one("body", "not_json", "请求体不是有效的 JSON",
                           f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise Rejected.one("body", "not_object", "请求体须为 JSON 对象",
                           "the JSON body must be an object")
    return data


def form_fields(text: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key.endswith("[]"):
            fields.setdefault(key[:-2], []).append(value)
        else:
            fields[key] = value
    return fields


class Fields:
    """Reads fields of one record, collecting every error; ``prefix`` names nested ones."""

    def __init__(self, data: Mapping[str, Any], prefix: str = "") -> None:
        self.data = data
        self.prefix = prefix
        self.errors: list[FieldError] = []

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, code: str, zh: str, en: str) -> None:
        self.errors.append(FieldError(self.name(key), code, zh, en))

    def text(self, key: str, limit: int = 200, *, required: bool = False,
             multiline: bool = False) -> str | None:
        value = self.data.get(key)
        if isinstance(value, list):
            value = value[-1] if value else None
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (str, int, float))):
            self.fail(key, "invalid_type", "须为文本", f"{self.name(key)} must be a text")
            return None
        text = (clean_text if multiline else clean_line)(str(value)) if value is not None else ""
        if not text:
            if required:
                self.fail(key, "required", "不能为空", f"{self.name(key)} is required")
            return None
        if len(text) > limit:
            self.fail(key, "too_long", f"不能超过 {limit} 字",
                      f"{self.name(key)} is longer than {limit} characters")
            return None
        return text

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None or isinstance(value, bool):
            return default if value is None else value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        self.fail(key, "invalid_boolean", "须为 是/否", f"{self.name(key)} must be true or false")
        return default

    def whole(self, key: str) -> int | None:
        text = self.text(key, 20)
        if text is None:
            return None
        try:
            number = int(float(text))
        except ValueError:
            number = -1
        if number < 0:
            self.fail(key, "invalid_number", "须为非负整数",
                      f"{self.name(key)} must be a whole number of at least 0")
            return None
        return number

    def when(self, key: str, tz: ZoneInfo) -> datetime | None:
        """An ISO 8601 time; without a zone it is read in ``tz`` (the configured zone)."""
        text = self.text(key, 40)
        if text is None or text in ("0", "0000-00-00 00:00:00"):
            return None
        value = parse_time(text, tz)
        if value is None:
            self.fail(key, "invalid_time", "时间格式无效",
                      f"{self.name(key)} is not a time such as 2019-11-20T09:30:00+08:00")
        return value

    def call_id(self, key: str) -> str:
        call_id = self.text(key, 200, required=True)
        return call_id or ""


def parse_time(text: str, tz: ZoneInfo) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)


def check_order(fields: Fields, times: Mapping[str, datetime | None],
                keys: Mapping[str, str]) -> None:
    """Refuse impossible times: ended before started, answered outside the call."""
    started, answered, ended = (times.get(k) for k in TIMES)
    if started and ended and ended < started:
        fields.fail(keys["ended_at"], "ended_before_started", "结束时间早于开始时间",
                    "the call ended before it started")
    if started and answered and answered < started:
        fields.fail(keys["answered_at"], "answered_before_started", "接听时间早于开始时间",
                    "the call was answered before it started")
    if answered and ended and ended < answered:
        fields.fail(keys["ended_at"], "ended_before_answered", "结束时间早于接听时间",
                    "the call ended before it was answered")


def notes_from(fields: Fields, keys: Mapping[str, str], *, strict: bool = True) -> Notes | None:
    """Notes from the fields named by ``keys`` (notes attribute -> input field); None when
    none of them is given. Without ``strict``, notes lacking content are dropped quietly
    (a call record is not refused for half-filled IVR variables)."""
    given = {attr: fields.text(key, NOTES_FIELDS[attr], multiline=attr == "content")
             for attr, key in keys.items() if attr in NOTES_FIELDS}
    phone_key = keys.get("phone")
    phone = fields.text(phone_key, 32) if phone_key else None
    if not any(given.values()) and phone is None:
        return None
    if not given.get("content") and strict:
        fields.fail(keys["content"], "required", "通话小记内容不能为空",
                    "the notes' content is required")
    e164 = None
    if phone is not None and phone_key is not None:
        try:
            e164 = to_e164(phone)
        except InvalidPhone:
            fields.fail(phone_key, "invalid_phone", "不是有效的中国手机或固定电话号码",
                        "not a valid Chinese mobile or landline number")
    anonymous = fields.flag(keys["anonymous"], False) if "anonymous" in keys else False
    reply = fields.flag(keys["reply_wanted"], not anonymous) if "reply_wanted" in keys else True
    if fields.errors or not given.get("content"):
        return None
    return Notes(subject=given.get("subject") or "", content=given["content"] or "",
                 address=given.get("address"), category=given.get("category"),
                 caller_name=given.get("caller_name"), phone=e164, anonymous=anonymous,
                 reply_wanted=reply, agent=given.get("agent"))


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
    def disposition(self) -> str | None:
        if self.answered:
            return "answered"
        stated = self.fields.get("disposition")
        if stated in MISSED:
            return str(stated)
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
    return ComplaintDraft(
        channel="phone", source=source, source_ref=state.call_id, received_at=received_at,
        reported_at=min(info.started_at or received_at, received_at),
        reporter=_reporter(info, notes), subject=subject, body=body,
        location=Location(address=notes.address) if notes and notes.address else None,
        call=info, category_hint=notes.category if notes else None, tags=tags,
    )


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


# -- the call_notes format ---------------------------------------------------------------

NOTES_KEYS = {"subject": "subject", "content": "content", "address": "address",
              "category": "category", "caller_name": "caller_name", "phone": "phone",
              "anonymous": "anonymous", "reply_wanted": "reply_wanted", "agent": "agent"}


def parse(raw: RawRecord, ctx: NormalizerContext) -> CallEvent:
    """Notes posted by the agent desktop; the call id is in the path (else ``call_id``,
    else, in a dry run, the file's name)."""
    fields = Fields(read_body(raw))
    call_id = (str(raw.metadata.get("call_id") or "") or fields.text("call_id", 200)
               or raw.source_ref)
    keys = dict(NOTES_KEYS)
    if "caller_name" not in fields.data and "name" in fields.data:
        keys["caller_name"] = "name"
    notes = notes_from(fields, keys)
    if notes is None and not fields.errors:
        fields.fail("content", "required", "通话小记内容不能为空", "the notes' content is required")
    if fields.errors:
        raise Rejected(fields.errors)
    assert notes is not None
    return CallEvent(call_id, rank=(NOTES, 0), fallbacks={"agent": notes.agent}, notes=notes)


def normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    return single_record_draft(parse(raw, ctx), raw, ctx)
