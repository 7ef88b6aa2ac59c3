"""The agent desktop's call notes (format ``call_notes``).

The notes an agent writes (subject, content, address, category, the caller's name,
whether the caller asked to stay confidential)
arrive on their own at ``POST /intake/<source>/calls/<call_id>/notes`` and are read
here; ``notes_from`` also reads notes that phone formats carry in their own fields
(IVR variables of a call record). The ``Notes`` model itself is in
``normalizers.hotline.call_state``, with the call it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from normalizers.common.phone import InvalidPhone, to_e164
from normalizers.hotline.call_fields import Fields, read_body
from normalizers.hotline.call_state import NOTES, CallEvent, Notes, single_record_draft

NOTES_FIELDS = {"subject": 200, "content": 5000, "address": 200, "category": 100,
                "caller_name": 50, "agent": 100}


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
    confidential = fields.flag(keys["confidential"], False) if "confidential" in keys else False
    if fields.errors or not given.get("content"):
        return None
    return Notes(subject=given.get("subject") or "", content=given["content"] or "",
                 address=given.get("address"), category=given.get("category"),
                 caller_name=given.get("caller_name"), phone=e164, anonymous=anonymous,
                 reply_wanted=reply, confidential=confidential, agent=given.get("agent"))


# -- the call_notes format ---------------------------------------------------------------

NOTES_KEYS = {"subject": "subject", "content": "content", "address": "address",
              "category": "category", "caller_name": "caller_name", "phone": "phone",
              "anonymous": "anonymous", "reply_wanted": "reply_wanted",
              "confidential": "confidential", "agent": "agent"}


def parse(raw: RawRecord, ctx: NormalizerContext) -> CallEvent:
    """Notes posted by the agent desktop; the call id is in the path (else ``call_id``,
    else, in a dry run, the file's name)."""
    fields = Fields(read_body(raw, ctx))
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
