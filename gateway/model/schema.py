"""The canonical complaint, schema v1, and the raw record an adapter hands over.

``ComplaintDraft`` is what a normalizer returns; ``Complaint`` is the draft once the
gateway has given it a case code, a dedup decision and a journal reference. The JSON
Schema that ``minsheng schema`` prints is generated from ``Complaint``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

SCHEMA_VERSION: Literal[1] = 1

Channel = Literal["phone", "web", "email", "opinion"]
# How a call ended: answered, or one of the ways a call is missed.
Disposition = Literal["answered", "abandoned", "no_answer", "busy", "failed"]
CHANNELS: tuple[Channel, ...] = ("phone", "web", "email", "opinion")


@dataclass(frozen=True)
class RawRecord:
    """What an adapter received, before any interpretation. Journaled as is."""

    channel: Channel
    source: str
    source_ref: str
    payload: bytes
    content_type: str
    received_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None

    def without_content(self) -> RawRecord:
        """This record as the journal keeps a replay of a submission erased at its
        person's request: where it came from and when, nothing of what it said (no payload,
        no metadata, no idempotency key), so a pulled source does not fetch it again."""
        return replace(self, payload=b"", metadata={}, idempotency_key=None)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


class Reporter(_Model):
    """Who raised the matter. ``phone`` is E.164; ``handle`` is a public screen name."""

    name: str | None = None
    phone: str | None = Field(default=None, description="E.164, e.g. +8613800138000")
    email: str | None = None
    handle: str | None = Field(default=None, description="author handle on a public site")
    anonymous: bool = False
    reply_wanted: bool = True


class Location(_Model):
    address: str | None = None
    district_code: str | None = None
    street_code: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class Attachment(_Model):
    file_name: str
    media_type: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    storage_ref: str = Field(description="where the bytes are kept, e.g. sha256:<hex>")


class CallInfo(_Model):
    """The call behind a phone complaint; times are UTC, seconds are whole seconds."""

    call_id: str
    direction: Literal["inbound", "outbound"] = "inbound"
    caller: str | None = None
    callee: str | None = None
    started_at: AwareDatetime | None = None
    answered_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    ring_seconds: int | None = Field(default=None, ge=0)
    talk_seconds: int | None = Field(default=None, ge=0)
    agent: str | None = None
    queue: str | None = None
    recording_ref: str | None = None
    disposition: Disposition | None = None

    _to_utc = field_validator("started_at", "answered_at", "ended_at")(_utc)


class PostInfo(_Model):
    """Where a public-opinion item was published."""

    url: str
    site: str | None = None
    author: str | None = None
    published_at: AwareDatetime | None = None
    reply_count: int | None = None
    view_count: int | None = None

    _to_utc = field_validator("published_at")(_utc)


class DedupInfo(_Model):
    kind: Literal["new", "repeat", "related"] = "new"
    repeat_of: str | None = None
    cluster_id: str | None = None
    similarity: float | None = Field(default=None, ge=0, le=1)


class Classification(_Model):
    """The class a model proposes (a hint): taxonomy code, names from the root, the
    model's confidence and which model said so."""

    code: str
    path: list[str]
    confidence: float = Field(ge=0, le=1)
    model: str


class RoutingInfo(_Model):
    """The department a routing rule (or the taxonomy) proposes, and why (a hint)."""

    department: str
    rule: str
    reason: str
    priority: Literal["low", "normal", "high", "urgent"] | None = None


class ComplaintDraft(_Model):
    """A normalizer's output: everything but what the gateway itself assigns."""

    channel: Channel
    source: str
    source_ref: str
    received_at: AwareDatetime
    reported_at: AwareDatetime
    reporter: Reporter = Field(default_factory=Reporter)
    # Optional with a default, so schema v1 documents without it stay valid.
    confidential: bool = Field(
        default=False, description="keep the reporter's identity confidential: outputs "
        "not set to receive it show the reporter's name, phone, e-mail and handle as null "
        "and mask them in the text (docs/personal-data.md#confidential-cases)")
    subject: str = ""
    body: str
    location: Location | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    call: CallInfo | None = None
    post: PostInfo | None = None
    category_hint: str | None = None
    tags: list[str] = Field(default_factory=list)

    # Bytes of attachments the normalizer found inside the raw record (e.g. a mail's
    # parts), keyed by sha256; the pipeline keeps them in the attachment store.
    _blobs: dict[str, bytes] = PrivateAttr(default_factory=dict)
    # Whether the gateway wrote subject and body itself (a missed call's callback text)
    # rather than a citizen or an agent: dedup then compares no text, only the reporter.
    _text_is_generated: bool = PrivateAttr(default=False)

    _to_utc = field_validator("received_at", "reported_at")(_utc)

    @property
    def blobs(self) -> dict[str, bytes]:
        return self._blobs

    @property
    def text_is_generated(self) -> bool:
        return self._text_is_generated

    def mark_text_generated(self) -> ComplaintDraft:
        """Say that subject and body are the gateway's own words (see ``_text_is_generated``)."""
        self._text_is_generated = True
        return self

    def attach(self, data: bytes, file_name: str, media_type: str) -> Attachment:
        """Describe ``data`` as an attachment and hand its bytes to the pipeline."""
        digest = hashlib.sha256(data).hexdigest()
        self._blobs[digest] = data
        attachment = Attachment(
            file_name=file_name, media_type=media_type, size=len(data), sha256=digest,
            storage_ref=f"sha256:{digest}",
        )
        self.attachments.append(attachment)
        return attachment

    @field_validator("subject", "body")
    @classmethod
    def _nfc(cls, value: str) -> str:
        return unicodedata.normalize("NFC", value)


class Complaint(ComplaintDraft):
    """The canonical complaint the case platform receives."""

    model_config = ConfigDict(
        extra="forbid",
        title="Minsheng canonical complaint",
        json_schema_extra={"$id": "https://minsheng.invalid/schema/complaint-v1.json"},
    )

    case_code: str
    schema_version: Literal[1] = SCHEMA_VERSION
    dedup: DedupInfo = Field(default_factory=DedupInfo)
    raw_ref: str = Field(description="the journal record it came from, e.g. raw:42")
    # Routing hints (optional, so schema v1 stays compatible): absent when unknown.
    classification: Classification | None = None
    routing: RoutingInfo | None = None
    due_at: AwareDatetime | None = Field(
        default=None, description="answer due by, counted in working days")

    _due_utc = field_validator("due_at")(_utc)


def complaint_json_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of the canonical complaint."""
    schema = Complaint.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
