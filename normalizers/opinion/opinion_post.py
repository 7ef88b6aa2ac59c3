"""What a public post becomes, whichever way it was read (a feed entry, a web page).

The feed and page normalizers differ in how they find a post's title, text, author and
time; the complaint they make of it is the same: channel ``opinion``, the author as a
public handle (anonymous without one, no reply wanted), a subject of at most 200
characters (the title, else the first line), the text cut at the source's
``max_body_chars``, the post block. One function builds it for both.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gateway.model.schema import ComplaintDraft, PostInfo, RawRecord, Reporter
from normalizers.common.text import clean_line, clip

SUBJECT_CHARS = 200


class OpinionSettings(BaseModel):
    """Source options the opinion normalizers read (the rest belong to the adapter)."""

    model_config = ConfigDict(extra="ignore")

    site: str | None = Field(default=None, description="site name shown on complaints")
    max_body_chars: int = Field(default=20_000, ge=100, le=50_000)


def post_draft(
    raw: RawRecord, settings: OpinionSettings, *, title: str | None, body: str,
    author: str | None, published: datetime | None, post: PostInfo, tags: list[str] | None = None,
) -> ComplaintDraft:
    """The complaint of one public post; ``body`` is its cleaned text (not empty)."""
    return ComplaintDraft(
        channel="opinion",
        source=raw.source,
        source_ref=raw.source_ref,
        received_at=raw.received_at,
        reported_at=min(published, raw.received_at) if published else raw.received_at,
        reporter=Reporter(handle=author, anonymous=author is None, reply_wanted=False),
        subject=clip(title or clean_line(body.split("\n", 1)[0]), SUBJECT_CHARS),
        body=clip(body, settings.max_body_chars),
        post=post,
        tags=tags or [],
    )
