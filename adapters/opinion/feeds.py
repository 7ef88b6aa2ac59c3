"""RSS and Atom feeds (adapter ``feeds``): each new, relevant entry becomes a record.

Each poll is one conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the
checkpoint, which holds only the URL, ETag and Last-Modified: never the list of entries
seen). A 304 ends the poll. Otherwise the feed is parsed, entries this source has
journaled already (by ``source_ref``: the entry id/GUID, else its link, else a hash of
title and content) are skipped, irrelevant ones are journaled as ``filtered``, and the
rest are handed to the poller oldest first; the last one carries the new checkpoint.

A feed that cannot be parsed at all makes the source unavailable with the reason; HTTP
and network failures map as ``adapters.opinion.web_common`` says.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from adapters.opinion.sites import http_url
from adapters.opinion.web_common import (
    WebOptions,
    WebSource,
    journal_filtered,
    journaled_refs,
    judge,
)
from gateway.intake.poller import Fetched
from gateway.model.errors import SourceUnavailable
from gateway.model.schema import RawRecord
from gateway.support.logging import get_logger
from normalizers.opinion.feed_entry import (
    ENTRY_TYPE,
    FeedUnreadable,
    ParsedFeed,
    entry_ref,
    parse_feed,
)

log = get_logger("adapters.feeds")


class FeedOptions(WebOptions):
    url: str = Field(description="the feed's URL (http or https)")
    max_entries: int = Field(default=200, ge=1, le=5000)

    _http = field_validator("url")(http_url)


def conditional_headers(url: str, checkpoint: Any) -> dict[str, str]:
    """``If-None-Match`` / ``If-Modified-Since`` from a checkpoint of the same URL."""
    if not isinstance(checkpoint, dict) or checkpoint.get("url") != url:
        return {}
    headers = {}
    if checkpoint.get("etag"):
        headers["If-None-Match"] = str(checkpoint["etag"])
    if checkpoint.get("last_modified"):
        headers["If-Modified-Since"] = str(checkpoint["last_modified"])
    return headers


def entry_records(source: str, feed: ParsedFeed, limit: int) -> list[RawRecord]:
    """One raw record per entry (the first ``limit`` in the feed), oldest first, each
    ``source_ref`` once."""
    now = datetime.now(UTC)
    records: dict[str, RawRecord] = {}
    for item in reversed(feed.entries[:limit]):
        ref = entry_ref(item)
        records.setdefault(ref, RawRecord(
            channel="opinion", source=source, source_ref=ref,
            payload=json.dumps(item, ensure_ascii=False).encode("utf-8"),
            content_type=ENTRY_TYPE, received_at=now,
            metadata={"url": item["entry"].get("link") or feed.url, "feed": feed.url},
        ))
    return list(records.values())


class FeedSource(WebSource[FeedOptions]):
    lease_s = 60.0  # renewed between items; the first one follows one GET and a parse
    default_format = "feed_entry"

    def first_url(self) -> str:
        return self.options.url

    async def read_feed(self, checkpoint: Any) -> tuple[ParsedFeed | None, dict[str, Any]]:
        """The parsed feed (``None`` on 304) and the checkpoint that covers it."""
        url = self.options.url
        page = await self.fetcher.get(url, headers=conditional_headers(url, checkpoint))
        if page.status == 304:
            return None, checkpoint
        try:
            # The configured URL resolves relative links and GUIDs, so they stay the same
            # if the feed moves behind a redirect.
            feed = await asyncio.to_thread(parse_feed, page.content, page.content_type, url)
        except FeedUnreadable as exc:
            raise SourceUnavailable(f"{url}: {exc}") from None
        if feed.warning:
            log.info("feed_irregular", source=self.name, warning=feed.warning[:200])
        state = {"url": url, "etag": page.headers.get("etag"),
                 "last_modified": page.headers.get("last-modified")}
        return feed, state

    async def fetch(self, checkpoint: Any) -> AsyncIterator[Fetched]:
        feed, state = await self.read_feed(checkpoint)
        if feed is None:
            return
        records = entry_records(self.name, feed, self.options.max_entries)
        seen = await journaled_refs(self.intake, self.name, [r.source_ref for r in records])
        fresh: list[Fetched] = []
        for raw in records:
            if raw.source_ref in seen:
                continue
            judged = await judge(self.intake, raw, self.options.relevance)
            if isinstance(judged, Fetched):
                fresh.append(judged)
            else:
                await journal_filtered(self.intake, raw, judged)
        for index, item in enumerate(fresh):
            last = index == len(fresh) - 1
            yield dataclasses.replace(item, checkpoint=state) if last else item
        if not fresh and state != checkpoint:  # move the checkpoint alone
            yield Fetched(None, state)
