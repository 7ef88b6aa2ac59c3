"""A hotline source's operations in the gateway's OpenAPI document (gateway/intake/openapi.py).

The call records of each format (docs/phone.md), the notes route, and the KPI and
overdue routes; each authentication scheme becomes a security scheme of the document,
except ``path_token``, which is a ``{token}`` path segment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.cdr_webhook.auth import AuthOptions
from gateway.intake.openapi import (
    ApiPart,
    JsonObject,
    bearer_scheme,
    json_answer,
    obj,
    operation,
    path_param,
    problem_answers,
    query,
    string,
)
from normalizers.hotline.call_notes import NOTES_FIELDS

if TYPE_CHECKING:
    from adapters.cdr_webhook import CdrWebhookSource

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BASE64_FORM = "application/x-www-form-base64-encoded"
STAMP = string(format="date-time", description="ISO 8601; without a zone, the configured "
                                                "timezone")
ANSWER = obj({
    "outcome": {"enum": ["new", "updated", "replay", "recorded", "ignored", "quarantined",
                         "erased"]},
    "call_id": string(), "case_code": string(),
    "call_status": {"enum": ["ringing", "answered", "ended", "missed"]},
    "waiting_for": string(), "quarantine_id": {"type": "integer"},
}, ["outcome"])
NOTES = obj({
    **{name: string(limit) for name, limit in NOTES_FIELDS.items()},
    "name": string(50), "phone": string(32),
    "anonymous": {"type": "boolean"}, "reply_wanted": {"type": "boolean"},
}, ["content"])

GENERIC_JSON = obj({
    "call_id": string(200, minLength=1), "direction": {"enum": ["inbound", "outbound"]},
    "caller": string(32), "callee": string(32),
    "started_at": STAMP, "answered_at": STAMP, "ended_at": STAMP,
    "agent": string(100), "queue": string(100), "recording_url": string(),
    "disposition": {"enum": ["answered", "abandoned", "no_answer", "busy", "failed"]},
    "notes": NOTES,
}, ["call_id", "started_at", "ended_at"])
FREESWITCH_CDR = obj({
    "variables": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "channel variables (uuid, caller_id_number, start_stamp…), "
                                 "URL-encoded when encode-values is on"},
    "callflow": {"type": ["array", "object"]},
}, ["variables"])
ZAMMAD_EVENT = obj({
    "event": {"enum": ["newCall", "answer", "hangup"]}, "callId": string(200, minLength=1),
    "from": string(32), "to": string(32), "direction": {"enum": ["in", "out"]},
    "user": {"oneOf": [string(), {"type": "array", "items": string()}]},
    "queue": string(), "answeringNumber": string(32),
    "cause": {"enum": ["normalClearing", "cancel", "noAnswer", "busy", "congestion",
                       "notFound"]},
}, ["event", "callId"])
TWILIO_CALLBACK = obj({
    "CallSid": string(200, minLength=1), "AccountSid": string(), "From": string(32),
    "To": string(32), "Direction": string(),
    "CallStatus": {"enum": ["queued", "initiated", "ringing", "in-progress", "completed",
                            "busy", "no-answer", "canceled", "failed"]},
    "CallDuration": string(pattern="^[0-9]+$"), "RecordingUrl": string(),
    "Timestamp": string(description="RFC 2822 (or ISO 8601)"),
    "SequenceNumber": string(pattern="^[0-9]+$"), "ParentCallSid": string(),
}, ["CallSid", "CallStatus"])

# Media type -> schema of what each format's phone system posts.
FORMAT_BODIES: dict[str, dict[str, JsonObject]] = {
    "generic_json": {JSON: GENERIC_JSON},
    "freeswitch_json": {
        JSON: FREESWITCH_CDR,
        FORM: obj({"cdr": string(description="the CDR's JSON, url-encoded")}, ["cdr"]),
        BASE64_FORM: obj({"cdr": string(contentEncoding="base64")}, ["cdr"]),
    },
    "zammad_cti": {JSON: ZAMMAD_EVENT, FORM: ZAMMAD_EVENT},
    "twilio": {FORM: TWILIO_CALLBACK, JSON: TWILIO_CALLBACK},
}


def auth_scheme(api: ApiPart, name: str, auth: AuthOptions) -> str | None:
    """Register ``auth`` as the security scheme ``name``; None when the request carries
    no credential of its own (``none``) or carries it in the path (``path_token``)."""
    scheme = auth.scheme
    if scheme in ("none", "path_token"):
        return None
    described: dict[str, JsonObject] = {
        "bearer": bearer_scheme("Authorization: Bearer <token>"),
        "basic": {"type": "http", "scheme": "basic"},
        "hmac": {"type": "apiKey", "in": "header", "name": auth.header,
                 "description": "t=<unix>,v1=<hex HMAC-SHA256 of \"<unix>.<body>\">"},
        "twilio": {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature",
                   "description": "base64 HMAC-SHA1 of the URL and the sorted POST "
                                  "parameters"},
    }
    api.security_schemes[name] = described[scheme]
    return name


def _post(summary: str, scheme: str | None, content: dict[str, JsonObject],
          parameters: list[JsonObject]) -> JsonObject:
    return operation(
        summary, ["phone"],
        {"202": json_answer("journaled and joined to its call", ANSWER),
         "200": json_answer("an update, a replay, or an ignored leg", ANSWER),
         **problem_answers(400, 401, 403, 413, 415, 422, 429, 503)},
        scheme=scheme, parameters=parameters,
        requestBody={"required": True,
                     "content": {media: {"schema": s} for media, s in content.items()}})


def _ops_get(summary: str, scheme: str | None, answer: JsonObject,
             parameters: list[JsonObject]) -> JsonObject:
    return operation(summary, ["phone"],
                     {"200": json_answer(summary, answer), **problem_answers(401, 403, 422, 503)},
                     scheme=scheme, parameters=parameters)


def part(source: CdrWebhookSource) -> ApiPart:
    """The operations of the hotline source ``source``."""
    api, name = ApiPart(), source.name
    base = f"/intake/{name}"
    token = [path_param("token", "the source's path token")]
    events_auth, notes_auth = source.auth.options, source.notes_auth.options
    events = base + ("/{token}" if events_auth.in_path else "")
    api.add(events, "post", _post(
        f"A call record or event ({source.format}), docs/phone.md",
        auth_scheme(api, f"{name}-auth", events_auth), FORMAT_BODIES[source.format],
        (token if events_auth.in_path else [])
        + ([query("uuid", string(), "the call's uuid (mod_json_cdr adds it)")]
           if source.format == "freeswitch_json" else [])))
    notes = base + ("/{token}" if notes_auth.in_path else "") + "/calls/{call_id}/notes"
    api.add(notes, "post", _post(
        "The agent's notes for a call", auth_scheme(api, f"{name}-notes-auth", notes_auth),
        {JSON: NOTES, FORM: NOTES},
        (token if notes_auth.in_path else [])
        + [path_param("call_id", "the phone system's id of the call")]))
    ops = None
    if source.ops_auth is not None:
        ops = f"{name}-ops"
        api.security_schemes[ops] = bearer_scheme("the source's ops_token")
    api.add(base + "/calls/stats", "get", _ops_get(
        "Call-handling KPIs", ops, {"type": "object"},
        [query("since", string(), "24h, 7d, 2024-05-06 or 2024-05-06T08:00 (default 24h)"),
         query("threshold", {"type": "integer", "minimum": 0},
               "answered within this many seconds counts as on time (default 15)")]))
    api.add(base + "/calls/overdue", "get", _ops_get(
        "Answered calls past their notes deadline", ops,
        obj({"overdue": {"type": "array", "items": {"type": "object"}}}, ["overdue"]), []))
    return api
