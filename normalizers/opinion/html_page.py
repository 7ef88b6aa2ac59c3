"""Posts of forums, news sites and message boards (adapter ``html_pages``) as ``opinion``
complaint drafts.

The record is the post's detail page as received (or, when the site definition fetches
no detail pages or the page is gone, the item's HTML on the list page), with the
fields read on the list page in ``metadata.fields`` (title, author, published text,
reply and view counts, summary). The body comes from the definition's ``detail.body``
selectors when it has them, else from generic article extraction
(``normalizers.opinion.article``: trafilatura with fallbacks when its text is thin, run on the
bytes we have: it never fetches anything). The title and author of the list page
win; the published time of the detail page's selector wins over the list page's (it is
usually more precise), which wins over a generically found date. The definition is the
source's ``definition`` option; without one (``minsheng normalize --format html_page
page.html``) extraction is generic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bs4 import BeautifulSoup, Tag

from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, PostInfo, RawRecord
from normalizers.common.html_text import element_text
from normalizers.common.text import clean_line, clean_text
from normalizers.opinion.article import extract_article
from normalizers.opinion.opinion_post import OpinionSettings, post_draft
from normalizers.opinion.post_time import parse_post_time
from normalizers.opinion.site_pages import (
    SITE_RESOURCE,
    DetailSpec,
    FieldSpec,
    SiteDefinition,
    field_value,
    read_html,
)


class HtmlPageSettings(OpinionSettings):
    """Source options the normalizer reads (the rest belong to the adapter; the site
    definition arrives parsed, in ``ctx.resources``)."""


def _body(soup: BeautifulSoup, detail: DetailSpec) -> str:
    """The text of the first ``detail.body`` selector that matches, less ``detail.drop``."""
    for selector in detail.body:
        element = soup.select_one(selector)
        if isinstance(element, Tag):
            for dropped in [d for sel in detail.drop for d in element.select(sel)]:
                dropped.decompose()
            text = element_text(element)
            if text:
                return text
    return ""


def _when(text: str | None, spec: FieldSpec | None, ctx: NormalizerContext,
          now: datetime) -> datetime | None:
    formats = spec.formats if spec is not None else []
    return parse_post_time(text, formats, tz=ctx.timezone, now=now)


def _definition(ctx: NormalizerContext) -> SiteDefinition | None:
    found = ctx.resources.get(SITE_RESOURCE)
    return found if isinstance(found, SiteDefinition) else None


@dataclass
class _Read:
    title: str | None = None
    author: str | None = None
    published: datetime | None = None  # by the definition's detail selector
    body: str = ""
    site: str | None = None
    guessed_published: datetime | None = None  # by generic extraction (often a date only)


def _read_detail(raw: RawRecord, definition: SiteDefinition | None, ctx: NormalizerContext,
                 url: str, listed: dict[str, Any]) -> _Read:
    """What the detail page says; generic extraction runs only for what nobody gave."""
    soup = read_html(raw.payload, raw.content_type, definition.encoding if definition else None)
    detail = definition.detail if definition else DetailSpec()
    found = _Read(
        title=clean_line(field_value(soup, detail.title) or "") or None,
        author=clean_line(field_value(soup, detail.author) or "") or None,
        published=_when(field_value(soup, detail.published), detail.published, ctx,
                        raw.received_at),
    )
    found.body = _body(soup, detail)  # after the fields: it may drop elements
    lacking = [key for key in ("title", "author", "published")
               if not (getattr(found, key) or listed.get(key))]
    if not found.body or lacking:
        article = extract_article(soup, url)
        found.body = found.body or article.text
        found.title = found.title or article.title
        found.author = found.author or article.author
        found.guessed_published = _when(article.published, None, ctx, raw.received_at)
        found.site = article.site
    return found


def normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    settings = ctx.settings(HtmlPageSettings)
    definition = _definition(ctx)
    meta = raw.metadata
    fields: dict[str, Any] = meta.get("fields") or {}
    url = str(meta.get("url") or raw.source_ref)
    if meta.get("page") == "list_item":
        found = _Read(body=clean_text(fields.get("summary") or ""))
    else:
        found = _read_detail(raw, definition, ctx, url, fields)
    listing = definition.listing if definition else None
    title = clean_line(fields.get("title") or "") or found.title
    author = clean_line(fields.get("author") or "") or found.author
    published = found.published or _when(
        fields.get("published"), listing.published if listing else None, ctx, raw.received_at,
    ) or found.guessed_published
    body = found.body or title or ""
    if not body:
        raise Rejected.one("page.body", "required", "页面上没有找到正文",
                           "no text was found on the page")
    site = settings.site or meta.get("site") or (definition.site if definition else None)
    return post_draft(
        raw, settings, title=title, body=body, author=author, published=published,
        post=PostInfo(url=url, site=site or found.site, author=author, published_at=published,
                      reply_count=fields.get("reply_count"),
                      view_count=fields.get("view_count")),
    )
