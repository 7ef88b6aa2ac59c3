"""The few facts of a delivered case a citizen notice needs, read from the outbox body.

Why not ``Complaint.model_validate``: the body a sink receives may be shaped for it
(attachment links, gateway/delivery/attachments.py) and later schema additions must not
make a notice fail; the notice needs only who wrote, how, and the code. A body that is
not a case document at all is a permanent failure (dead letter), never a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.model.schema import CHANNELS, Channel


class NotACase(ValueError):
    """The delivery's body is not a case document this sink can read."""


@dataclass(frozen=True)
class CaseFacts:
    case_code: str
    channel: Channel
    received_at: datetime
    subject: str
    source_ref: str
    raw_ref: str | None
    tags: tuple[str, ...]
    email: str | None
    phone: str | None
    anonymous: bool
    reply_wanted: bool

    @classmethod
    def from_body(cls, body: str) -> CaseFacts:
        try:
            doc = json.loads(body)
            reporter: dict[str, Any] = doc.get("reporter") or {}
            channel = doc["channel"]
            if channel not in CHANNELS:
                raise NotACase(f"unknown channel {channel!r}")
            return cls(
                case_code=str(doc["case_code"]), channel=channel,
                received_at=datetime.fromisoformat(doc["received_at"]),
                subject=str(doc.get("subject") or ""), source_ref=str(doc.get("source_ref") or ""),
                raw_ref=doc.get("raw_ref"), tags=tuple(str(t) for t in doc.get("tags") or ()),
                email=reporter.get("email") or None, phone=reporter.get("phone") or None,
                anonymous=bool(reporter.get("anonymous", False)),
                reply_wanted=bool(reporter.get("reply_wanted", True)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, NotACase):
                raise
            raise NotACase(f"not a case document ({type(exc).__name__})") from None

    @property
    def raw_id(self) -> int | None:
        """The journal row of the case (``raw:42`` → 42)."""
        prefix, _, number = (self.raw_ref or "").partition(":")
        return int(number) if prefix == "raw" and number.isdigit() else None
