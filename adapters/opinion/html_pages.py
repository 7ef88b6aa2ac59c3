"""Forum, news and message-board pages (adapter ``html_pages``), read by a site definition.

Each poll walks the list pages of every start URL (the definition's, or the source's
``start_urls``): page 1, then the next page (next-link or URL pattern) up to the page
limit. It stops paginating at the first page that shows an item this source has
journaled already (so an incremental crawl reads one page); the new items of that page
are still taken. New items are taken oldest first, at most ``max_items`` per poll; the
detail page of each is fetched (only for new items), irrelevant ones are journaled as
``filtered``, and the rest go to the poller. Nothing else is checkpointed: "journaled
already" (by the post URL, the ``source_ref``) is the state, kept in the store.

A start URL answering 404/401/403 makes the source misconfigured; a later list page or
a detail page answering 4xx is skipped (the item keeps what the list page showed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from adapters.opinion.sites import (
    SITE_RESOURCE,
    ListItem,
    ListPage,
    SiteDefinition,
    extract_list,
    http_url,
    load_site,
    read_html,
)
from adapters.opinion.web_common import (
    PageGone,
    WebOptions,
    WebSource,
    journal_filtered,
    journaled_refs,
    judge,
)
from gateway.intake.poller import Fetched
from gateway.model.errors import ConfigError, SourceMisconfigured
from gateway.model.schema import RawRecord
from gateway.support.logging import get_logger
from normalizers.opinion.relevance import Relevance, check

log = get_logger("adapters.html_pages")
LIST_ITEM_TYPE = "text/html; charset=utf-8"


class HtmlPagesOptions(WebOptions):
    definition: str = Field(description="config/sites/<name>.yaml, or its name")
    start_urls: list[str] | None = Field(default=None, description="instead of the definition's")
    max_pages: int | None = Field(default=None, ge=1, le=100, description="list pages per poll")
    max_items: int = Field(default=50, ge=1, le=1000, description="new items per poll")
    max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, description="bytes per page")
    poll_interval_s: float = Field(default=900.0, gt=0)

    @field_validator("definition")
    @classmethod
    def _loads(cls, value: str) -> str:
        try:
            load_site(value)
        except ConfigError as exc:
            raise ValueError("; ".join(exc.errors)) from None
        return value

    @field_validator("start_urls")
    @classmethod
    def _http(cls, value: list[str] | None) -> list[str] | None:
        return [http_url(url) for url in value] if value is not None else None


def _list_page(content: bytes, content_type: str, definition: SiteDefinition, url: str,
               page: int, start_url: str) -> ListPage:
    soup = read_html(content, content_type, definition.encoding)
    return extract_list(definition, soup, url, page, start_url)


class HtmlPagesSource(WebSource[HtmlPagesOptions]):
    lease_s = 180.0  # renewed between items; the first follows a paced crawl of the lists
    default_format = "html_page"

    @classmethod
    def resources(cls, options: Any) -> dict[str, Any]:
        """The site definition, parsed, for the ``html_page`` normalizer."""
        return {SITE_RESOURCE: load_site(HtmlPagesOptions.model_validate(options).definition)}

    async def fetch(self, checkpoint: Any) -> AsyncIterator[Fetched]:
        try:
            definition = load_site(self.options.definition)  # re-read when the file changes
        except ConfigError as exc:
            raise SourceMisconfigured("; ".join(exc.errors)) from None
        self._share(definition)
        for start_url in self.options.start_urls or definition.start_urls:
            items = await self.new_items(definition, start_url)
            for item in reversed(items):  # oldest first: a crash never hides older items
                fetched = await self.record(definition, item)
                if fetched is not None:
                    yield fetched

    def first_url(self) -> str:
        return (self.options.start_urls or load_site(self.options.definition).start_urls)[0]

    def _share(self, definition: SiteDefinition) -> None:
        """The normalizer reads pages by the definition this poll read (it may have
        changed on disk since the last one)."""
        binding = self.intake.bindings.get(self.name)
        if binding is not None:
            binding.context.resources[SITE_RESOURCE] = definition

    async def new_items(self, definition: SiteDefinition, start_url: str) -> list[ListItem]:
        """Items not journaled yet, newest first, reading list pages until a seen one."""
        max_pages = self.options.max_pages or definition.pagination.max_pages
        url: str | None = start_url
        found: list[ListItem] = []
        visited: set[str] = set()
        for page in range(1, max_pages + 1):
            if url is None or url in visited:
                break
            visited.add(url)
            try:
                fetched = await self.fetcher.get(url, configured=page == 1, truncate=True)
            except PageGone as exc:
                log.warning("list_page_skipped", source=self.name, url=url, reason=exc.reason)
                break
            listing = await asyncio.to_thread(_list_page, fetched.content, fetched.content_type,
                                              definition, fetched.url, page, start_url)
            if not listing.items:  # past the last page, or the selector no longer matches
                if page == 1:
                    log.warning("no_items_matched", source=self.name, url=url,
                                selector=definition.listing.item)
                break
            seen = await journaled_refs(self.intake, self.name, [i.url for i in listing.items])
            known = {i.url for i in found}
            found.extend(i for i in listing.items if i.url not in seen and i.url not in known)
            if seen or len(found) >= self.options.max_items:
                break
            url = listing.next_url
        return found[: self.options.max_items]

    async def record(self, definition: SiteDefinition, item: ListItem) -> Fetched | None:
        """The item's record (detail page fetched), or ``None`` if it was filtered."""
        rules = self.options.relevance
        raw = self._raw(definition, item, item.html.encode("utf-8"), LIST_ITEM_TYPE,
                        "list_item")
        by_title = check(Relevance(exclude=rules.exclude), item.fields["title"])
        if not by_title.relevant:  # no need to fetch the detail page
            await journal_filtered(self.intake, raw, by_title)
            return None
        if definition.detail.fetch:
            try:
                page = await self.fetcher.get(item.url, configured=False, truncate=True)
            except PageGone as exc:
                log.info("detail_page_skipped", source=self.name, url=item.url, reason=exc.reason)
            else:
                raw = self._raw(definition, item, page.content,
                                page.content_type or "text/html", "detail")
        judged = await judge(self.intake, raw, rules)
        if isinstance(judged, Fetched):
            return judged
        await journal_filtered(self.intake, raw, judged)
        return None

    def _raw(self, definition: SiteDefinition, item: ListItem, payload: bytes,
             content_type: str, kind: str) -> RawRecord:
        return RawRecord(
            channel="opinion", source=self.name, source_ref=item.url, payload=payload,
            content_type=content_type, received_at=datetime.now(UTC),
            metadata={
                "url": item.url, "site": self.options.site or definition.site,
                "definition": definition.name, "page": kind, "fields": item.fields,
            },
        )
