"""RSS 0.9x/1.0/2.0 and Atom entries (feedparser) as ``opinion`` complaint drafts.

The feed adapter journals one record per entry: a JSON envelope
(``application/vnd.minsheng.feed-entry+json``) of what feedparser read — the entry's id,
link, title, author, dates, summary and content as (sanitised) HTML, tags — and of the
feed it came from. A whole feed document (``application/rss+xml``, ``…/xml``) is read
too, its first entry taken, so ``minsheng normalize --format feed_entry sample.xml``
works on a saved feed.

Feeds are messy: the bytes are decoded by ``normalizers.common.charset`` (a BOM or blank line
before ``<?xml``, a declared encoding that lies, GB2312 and Big5 labels), then handed to
feedparser as UTF-8; whatever can be read is read.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser  # type: ignore[import-untyped]

from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, PostInfo, RawRecord
from normalizers.common.charset import decode, media_type
from normalizers.common.html_text import html_to_text
from normalizers.common.text import clean_line, clean_text
from normalizers.opinion.opinion_post import OpinionSettings, post_draft
from normalizers.opinion.post_time import parse_post_time

ENTRY_TYPE = "application/vnd.minsheng.feed-entry+json"
_DECLARATION_ENCODING = re.compile(r"""^(<\?xml[^>]*?)\s+encoding\s*=\s*["'][^"']*["']""")
MAX_TAGS = 20


class FeedUnreadable(ValueError):
    """Not an RSS or Atom feed at all (an HTML error page, garbage, nothing)."""


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    link: str | None
    url: str | None
    version: str
    entries: list[dict[str, Any]]  # envelopes, in document order (usually newest first)
    warning: str | None = None


def _utf8_document(data: bytes, content_type: str | None) -> bytes:
    """The feed re-encoded as UTF-8 with no encoding declaration left to contradict it."""
    text = decode(data, content_type).text.lstrip("\ufeff \t\r\n")
    return _DECLARATION_ENCODING.sub(r"\1", text, count=1).encode("utf-8")


def _plain(entry: Any, key: str) -> Any:
    """``entry[key]`` without feedparser's deprecated fallbacks (``updated`` → ``published``)."""
    return dict.get(entry, key)


def _time(entry: Any, key: str) -> str | None:
    parsed = _plain(entry, f"{key}_parsed")
    if parsed is None:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC).isoformat()


def _html(detail: Any, value: str | None) -> str | None:
    """Text kept as HTML (feedparser marks plain text ``text/plain``)."""
    if not value:
        return None
    kind = (detail or {}).get("type", "text/html")
    return value if "html" in kind else _escape(value)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _content(entry: Any) -> str | None:
    parts = [c for c in entry.get("content") or [] if c.get("value")]
    if not parts:
        return None
    best = max(parts, key=lambda c: len(c["value"]))
    return _html(best, best["value"])


def _count(entry: Any) -> int | None:
    for key in ("slash_comments", "thr_total"):
        value = str(entry.get(key) or "").strip()
        if value.isdigit():
            return int(value)
    return None


def _author(entry: Any) -> str | None:
    detail = entry.get("author_detail") or {}
    name = detail.get("name") or entry.get("author")
    return clean_line(name) or None if name else None


def envelope(entry: Any, feed: dict[str, Any]) -> dict[str, Any]:
    """The journaled form of one feedparser entry."""
    published = _plain(entry, "published") or _plain(entry, "updated")
    return {
        "feed": feed,
        "entry": {
            "id": (entry.get("id") or "").strip() or None,
            "link": (entry.get("link") or "").strip() or None,
            "title": _html(entry.get("title_detail"), entry.get("title")),
            "author": _author(entry),
            "published": _time(entry, "published") or _time(entry, "updated"),
            "published_text": published,
            "summary": _html(entry.get("summary_detail"), entry.get("summary")),
            "content": _content(entry),
            "tags": [t["term"] for t in entry.get("tags") or [] if t.get("term")][:MAX_TAGS],
            "comments": _count(entry),
        },
    }


def entry_ref(item: dict[str, Any]) -> str:
    """The source's id of an entry: its id/GUID, else its link, else a hash of its text."""
    entry = item["entry"]
    if entry.get("id"):
        return str(entry["id"])
    if entry.get("link"):
        return str(entry["link"])
    text = f"{entry.get('title') or ''}\n{entry.get('content') or entry.get('summary') or ''}"
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_feed(data: bytes, content_type: str | None = None, url: str | None = None) -> ParsedFeed:
    """Read a feed document; ``FeedUnreadable`` with the reason if it is none."""
    if not data.strip():
        raise FeedUnreadable("the document is empty (内容为空)")
    headers = {"content-type": "application/xml; charset=utf-8"}
    if url:
        headers["content-location"] = url
    parsed = feedparser.parse(_utf8_document(data, content_type), response_headers=headers)
    problem = parsed.get("bozo_exception")
    if not parsed.get("version") and not parsed.entries:
        reason = f"{type(problem).__name__}: {problem}" if problem else "no RSS or Atom root"
        raise FeedUnreadable(f"not an RSS or Atom feed (不是 RSS/Atom 订阅源): {reason}")
    feed = {"url": url, "title": clean_line(parsed.feed.get("title") or "") or None,
            "link": parsed.feed.get("link")}
    return ParsedFeed(
        feed["title"], feed["link"], url, parsed.get("version") or "unknown",
        [envelope(e, feed) for e in parsed.entries],
        f"{type(problem).__name__}: {problem}" if problem else None,
    )


# -- normalizer --------------------------------------------------------------------------


def _item_of(raw: RawRecord) -> dict[str, Any]:
    if media_type(raw.content_type) == ENTRY_TYPE:
        try:
            item = json.loads(raw.payload)
            assert isinstance(item, dict) and isinstance(item["entry"], dict)
            return item
        except (ValueError, KeyError, AssertionError):
            raise Rejected.one("entry", "unreadable", "订阅条目无法解析",
                               "the feed entry record is not readable") from None
    try:
        feed = parse_feed(raw.payload, raw.content_type, raw.metadata.get("url"))
    except FeedUnreadable as exc:
        raise Rejected.one("feed", "unreadable", "订阅源无法解析", str(exc)) from None
    if not feed.entries:
        raise Rejected.one("feed", "no_entries", "订阅源没有条目", "the feed has no entries")
    return feed.entries[0]


def normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    settings = ctx.settings(OpinionSettings)
    item = _item_of(raw)
    entry, feed = item["entry"], item.get("feed") or {}
    title = clean_line(html_to_text(entry.get("title") or ""))
    body = html_to_text(entry.get("content") or entry.get("summary") or "") or title
    if not body:
        raise Rejected.one("entry.content", "required", "条目没有标题也没有内容",
                           "the entry has neither a title nor any content")
    url = entry.get("link") or feed.get("link") or feed.get("url")
    if not url:
        raise Rejected.one("entry.link", "required", "条目没有链接", "the entry has no link")
    # The feed's own text first: a time without a zone is local, not UTC as feedparser
    # assumes; feedparser's reading covers the exotic formats.
    published = parse_post_time(entry.get("published_text"), tz=ctx.timezone,
                                now=raw.received_at) or \
        parse_post_time(entry.get("published"), tz=ctx.timezone, now=raw.received_at)
    author = entry.get("author")
    return post_draft(
        raw, settings, title=title, body=clean_text(body), author=author, published=published,
        post=PostInfo(url=url, site=settings.site or feed.get("title"), author=author,
                      published_at=published, reply_count=entry.get("comments")),
        tags=list(dict.fromkeys(clean_line(t) for t in entry.get("tags") or [] if t.strip())),
    )
