"""``freeswitch_json``: the CDR FreeSWITCH's ``mod_json_cdr`` posts when a call ends.

The module sends one of three encodings (its ``encode`` parameter): the raw JSON
(``application/json``), a form field ``cdr=<url-encoded JSON>`` (the default), or
``cdr=<base64 JSON>`` (``application/x-www-form-base64-encoded``). Every value of
``variables`` is a string and, with ``encode-values`` (the default), URL-encoded.
``start_stamp``/``answer_stamp``/``end_stamp`` are local times without a zone: they
are read in the configured time zone (the ``*_epoch`` values are the fallback).

Custom channel variables set by the IVR or the agent desktop carry the call notes;
their names are configurable (``freeswitch.notes_variables``). A B-leg CDR (the agent's
leg, sent unless ``log-b-leg=false``) is journaled and ignored: the A-leg is the call.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field

from gateway.model.errors import Rejected
from gateway.model.input_limits import InputLimits, WithLimits
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from normalizers.common.charset import media_type
from normalizers.common.phone import caller_to_e164
from normalizers.hotline.call_fields import Fields, check_order, form_fields, json_object
from normalizers.hotline.call_notes import notes_from
from normalizers.hotline.call_state import CDR, CallEvent, single_record_draft

BASE64_TYPE = "application/x-www-form-base64-encoded"
# Hang-up causes of an unanswered call; any other cause is "failed".
_MISSED_CAUSES = {
    "ORIGINATOR_CANCEL": "abandoned", "NORMAL_CLEARING": "abandoned",
    "NO_ANSWER": "no_answer", "NO_USER_RESPONSE": "no_answer",
    "ALLOTTED_TIMEOUT": "no_answer", "RECOVERY_ON_TIMER_EXPIRE": "no_answer",
    "USER_BUSY": "busy", "CALL_REJECTED": "busy",
}


class NotesVariables(BaseModel):
    """Names of the channel variables that carry the call notes."""

    model_config = ConfigDict(extra="forbid")

    subject: str = "complaint_subject"
    content: str = "complaint_content"
    address: str = "complaint_address"
    category: str = "complaint_category"
    caller_name: str = "complaint_caller_name"
    phone: str = "complaint_phone"
    confidential: str = "complaint_confidential"


class FreeswitchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decode_values: bool = True
    notes_variables: NotesVariables = Field(default_factory=NotesVariables)
    agent_variables: list[str] = Field(
        default_factory=lambda: ["cc_agent", "dialed_user", "last_sent_callee_id_number"])
    queue_variables: list[str] = Field(default_factory=lambda: ["cc_queue"])
    recording_variables: list[str] = Field(
        default_factory=lambda: ["recording_url", "record_path", "recording_file"])
    # Epoch seconds of the agent's answer (mod_callcenter: cc_queue_answered_epoch). When
    # set, a call the IVR answered but no agent did counts as not answered.
    agent_answer_variable: str | None = None


class FreeswitchSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    freeswitch: FreeswitchOptions = Field(default_factory=FreeswitchOptions)


def cdr_document(raw: RawRecord, limits: InputLimits) -> dict[str, Any]:
    """The CDR's JSON object, whichever encoding it came in (strict JSON within
    ``limits``, as every phone format)."""
    try:
        text = raw.payload.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise Rejected.one("body", "not_utf8", "请求体须为 UTF-8 编码",
                           "the body is not UTF-8") from None
    if text.startswith("{"):
        return json_object(text, limits, "body")
    if not text.startswith("cdr="):
        raise Rejected.one("cdr", "required", "缺少 cdr 字段",
                           "the body is neither JSON nor a form with a cdr field")
    if media_type(raw.content_type) == BASE64_TYPE:
        return json_object(_unbase64(text[4:]), limits, "cdr")
    value = str(form_fields(text, limits).get("cdr", ""))
    return json_object(value if value.lstrip().startswith("{") else _unbase64(text[4:]),
                       limits, "cdr")


def _unbase64(value: str) -> str:
    value = unquote(value).strip().replace(" ", "+")  # a form parser's "+" -> " " undone
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise Rejected.one("cdr", "not_base64", "cdr 字段既不是 JSON 也不是 base64",
                           "the cdr field is neither JSON nor base64") from None


def _variables(cdr: dict[str, Any], decode: bool) -> dict[str, str]:
    found = cdr.get("variables")
    if not isinstance(found, dict):
        raise Rejected.one("variables", "required", "缺少 variables 对象",
                           "the CDR has no variables object")
    values = {str(k): v if isinstance(v, str) else str(v) for k, v in found.items()}
    return {k: unquote(v) for k, v in values.items()} if decode else values


def _profiles(cdr: dict[str, Any]) -> list[dict[str, Any]]:
    """Caller profiles of the callflow (a list, or one object in older versions),
    the original one (lowest ``profile_index``) first."""
    flows = cdr.get("callflow")
    flows = flows if isinstance(flows, list) else [flows]
    found = [f for f in flows if isinstance(f, dict) and isinstance(f.get("caller_profile"), dict)]
    found.sort(key=lambda f: int(f.get("profile_index") or 0)
               if str(f.get("profile_index") or "0").isdigit() else 0)
    return [f["caller_profile"] for f in found]


def _first(variables: dict[str, str], names: list[str]) -> str | None:
    return next((variables[n].strip() for n in names if variables.get(n, "").strip()), None)


def _epoch(value: str | None) -> datetime | None:
    if not value or not value.strip().isdigit() or int(value) <= 0:
        return None
    return datetime.fromtimestamp(int(value), UTC)


def _times(fields: Fields, v: dict[str, str], ctx: NormalizerContext,
           options: FreeswitchOptions) -> dict[str, datetime | None]:
    def stamp(name: str) -> datetime | None:
        return fields.when(f"{name}_stamp", ctx.timezone) or _epoch(v.get(f"{name}_epoch"))

    times = {"started_at": stamp("start"), "answered_at": stamp("answer"),
             "ended_at": stamp("end")}
    if options.agent_answer_variable:
        times["answered_at"] = _epoch(v.get(options.agent_answer_variable))
    for key, name in (("started_at", "start_stamp"), ("ended_at", "end_stamp")):
        if times[key] is None and not v.get(name, "").strip():
            fields.fail(name, "required", "不能为空", f"variables.{name} is required")
    keys = {"started_at": "start_stamp", "answered_at": "answer_stamp", "ended_at": "end_stamp"}
    check_order(fields, times, keys)
    return times


def parse(raw: RawRecord, ctx: NormalizerContext) -> CallEvent:
    options = ctx.settings(FreeswitchSettings).freeswitch
    cdr = cdr_document(raw, ctx.settings(WithLimits).limits)
    v = _variables(cdr, options.decode_values)
    profiles = _profiles(cdr)
    original = profiles[0] if profiles else {}
    fields = Fields(v, prefix="variables.")
    call_id = (v.get("uuid") or v.get("call_uuid") or str(original.get("uuid") or "")
               or str(raw.metadata.get("query", {}).get("uuid", ""))).strip()
    if not call_id:
        fields.fail("uuid", "required", "缺少通话标识", "the call id (variables.uuid) is missing")
    times = _times(fields, v, ctx, options)
    notes = notes_from(fields, options.notes_variables.model_dump(), strict=False)
    answered = times["answered_at"] is not None
    talk = fields.whole("billsec") if answered else None
    if fields.errors:
        raise Rejected(fields.errors)
    cause = v.get("hangup_cause", "").strip().upper()
    values: dict[str, Any] = {
        "direction": "outbound" if v.get("call_direction") == "outbound" else "inbound",
        "caller": caller_to_e164(_first(v, ["caller_id_number"])
                                 or str(original.get("caller_id_number") or "")
                                 or _first(v, ["ani", "sip_from_user"])),
        "callee": caller_to_e164(_first(v, ["destination_number"])
                                 or str(original.get("destination_number") or "")
                                 or _first(v, ["sip_req_user", "sip_to_user"])),
        **times,
        "agent": _first(v, options.agent_variables),
        "queue": _first(v, options.queue_variables),
        "recording_ref": _first(v, options.recording_variables),
        "disposition": "answered" if answered else _MISSED_CAUSES.get(cause, "failed"),
        "talk_seconds": talk,
    }
    return CallEvent(call_id[:200], rank=(CDR, 0), fields=values, final=True, notes=notes,
                     ignore="b_leg" if _is_b_leg(v, profiles) else None)


def _is_b_leg(v: dict[str, str], profiles: list[dict[str, Any]]) -> bool:
    """The leg FreeSWITCH originated towards the agent, not the caller's call."""
    return bool(v.get("originating_leg_uuid")) or v.get("last_bridge_role") == "originatee" \
        or any("originator" in p for p in profiles)


def normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    return single_record_draft(parse(raw, ctx), raw, ctx)
