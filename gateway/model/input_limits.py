"""Shape limits on what a push source may send, one model shared by every push adapter.

A hostile body costs nothing when its shape is checked before any work: the JSON reader
(``gateway.model.strict_json``) counts depth and items before parsing, the web mailbox counts
form fields and multipart parts as it reads, and the adapters take request-body bytes
from a budget (``gateway.intake.body_budget``) before reading. Each limit is configurable per
source under ``options.limits`` (docs/configuration.md lists the keys and defaults).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field

from gateway.model.schema import RawRecord


class InputLimits(BaseModel):
    """``options.limits`` of a push source (web mailbox, phone hotline)."""

    model_config = ConfigDict(extra="forbid")

    max_json_depth: int = Field(default=32, ge=2, le=256)
    max_json_items: int = Field(default=10_000, ge=10, le=1_000_000)
    max_form_fields: int = Field(default=200, ge=1, le=100_000)
    max_parts: int = Field(default=50, ge=1, le=10_000)
    max_part_header_bytes: int = Field(default=8190, ge=256, le=65536)
    max_part_headers: int = Field(default=16, ge=1, le=128)
    max_form_kb: int = Field(default=256, ge=1, le=65536)
    refused_keep_kb: int = Field(default=64, ge=0, le=1024)
    body_budget_mb: float = Field(default=64.0, gt=0)
    body_wait_s: float = Field(default=2.0, ge=0, le=60)

    @property
    def max_form_bytes(self) -> int:
        return self.max_form_kb * 1024

    @property
    def refused_keep_bytes(self) -> int:
        return self.refused_keep_kb * 1024


class WithLimits(BaseModel):
    """How a normalizer reads its source's ``limits`` (other options ignored)."""

    model_config = ConfigDict(extra="ignore")

    limits: InputLimits = Field(default_factory=InputLimits)


def kept_of_refused(raw: RawRecord, keep_bytes: int) -> RawRecord:
    """What the journal keeps of a record refused with a 4xx: all of a small one; of a
    bigger one its first ``keep_bytes`` bytes, with its size and sha256 in the metadata
    (``refused_body``), so a refusal costs the store at most ``keep_bytes``."""
    size = len(raw.payload)
    if size <= keep_bytes:
        return raw
    summary = {"size": size, "sha256": hashlib.sha256(raw.payload).hexdigest(),
               "kept_bytes": keep_bytes}
    return replace(raw, payload=raw.payload[:keep_bytes],
                   metadata={**raw.metadata, "refused_body": summary})
