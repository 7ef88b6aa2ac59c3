"""``minsheng feeds …`` and ``minsheng sites …``: check a feed or a site definition
before it goes live.

- ``feeds test (--file FEED.xml | --url URL)``: the complaints the feed would yield, one
  canonical JSON object per line (exit 0), or why it cannot be read (exit 1).
- ``sites test DEFINITION [--file page.html | --url URL] [--detail N]``: what the
  definition reads on a list page, one JSON object per item (exit 0; exit 1 when no item
  matched); with ``--detail`` the first N items' detail pages are fetched and their
  complaints printed too.
- ``sites extract (--file page.html | --url URL)``: generic extraction of one article
  page as JSON (title, published, author, text); exit 1 when no text is found.

With ``--config`` and ``--source`` the source's options apply (user agent, limits,
relevance, site name) and the config's time zone.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from zoneinfo import ZoneInfo

import click
from pydantic import BaseModel, ValidationError

from gateway.model.errors import ConfigError, Rejected, SourceError
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import RawRecord
from gateway.support.config import describe_validation_error, load_config

if TYPE_CHECKING:
    from adapters.opinion.sites import SiteDefinition

_file = click.option("--file", "file", type=click.Path(exists=True, dir_okay=False,
                                                        path_type=Path), help="a saved copy")
_url = click.option("--url", help="fetch this URL (robots.txt and politeness apply)")
_config = click.option("--config", "config_path", type=click.Path(path_type=Path),
                       default=None, help="gateway config whose --source options apply")
_source = click.option("--source", "source_name", default=None, help="source name in --config")


@dataclass
class _Setup:
    name: str
    options: dict[str, Any]
    timezone: ZoneInfo

    def context(self) -> NormalizerContext:
        return NormalizerContext(self.name, self.timezone, self.options)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _setup(config_path: Path | None, source_name: str | None, default: str) -> _Setup:
    if config_path is None:
        if source_name is not None:
            raise click.UsageError("--source needs --config")
        return _Setup(default, {}, ZoneInfo("Asia/Shanghai"))
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc), 2)
    if source_name is None:
        return _Setup(default, {}, config.tz)
    try:
        return _Setup(source_name, config.source(source_name).options, config.tz)
    except KeyError:
        raise click.UsageError(f"{config_path} has no source {source_name!r}") from None


def _options(model: type[BaseModel], values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        _fail("\n".join(describe_validation_error(exc, "options")), 2)


def _one_of(file: Path | None, url: str | None, required: bool = True) -> None:
    if file is not None and url is not None:
        raise click.UsageError("give --file or --url, not both")
    if required and file is None and url is None:
        raise click.UsageError("give --file or --url")


async def _get(url: str, options: Any) -> tuple[bytes, str, str]:
    from adapters.opinion.web_common import Fetcher

    fetcher = Fetcher(options)
    try:
        page = await fetcher.get(url)
    finally:
        await fetcher.close()
    return page.content, page.content_type, page.url


def _read(file: Path | None, url: str | None, options: Any) -> tuple[bytes, str | None, str]:
    """The bytes, content type and URL of a saved file or a fetched page."""
    if file is not None:
        return file.read_bytes(), None, file.resolve().as_uri()
    assert url is not None
    try:
        return asyncio.run(_get(url, options))
    except SourceError as exc:
        _fail(f"cannot read {url}: {exc}")


def _raw(name: str, ref: str, payload: bytes, content_type: str,
         metadata: dict[str, Any]) -> RawRecord:
    return RawRecord(channel="opinion", source=name, source_ref=ref, payload=payload,
                     content_type=content_type, received_at=datetime.now(UTC), metadata=metadata)


@click.group()
def feeds() -> None:
    """RSS and Atom feeds (adapter feeds)."""


@feeds.command("test")
@_file
@_url
@_config
@_source
def feeds_test(file: Path | None, url: str | None, config_path: Path | None,
               source_name: str | None) -> None:
    """Print the complaints a feed would yield, one JSON object per line."""
    from adapters.opinion.feeds import FeedOptions, entry_records
    from normalizers.opinion.feed_entry import FeedUnreadable, normalize, parse_feed
    from normalizers.opinion.relevance import check

    setup = _setup(config_path, source_name, "feeds-test")
    if file is None and url is None:
        url = setup.options.get("url")  # the source's own feed
    _one_of(file, url)
    options = _options(FeedOptions, {**setup.options, "url": url or "http://localhost/"})
    content, content_type, where = _read(file, url, options)
    try:
        feed = parse_feed(content, content_type, where)
    except FeedUnreadable as exc:
        _fail(f"{where}: {exc}")
    context = setup.context()
    for raw in entry_records(setup.name, feed, options.max_entries):
        try:
            draft = normalize(raw, context)
        except Rejected as exc:
            click.echo(f"rejected {raw.source_ref}: {exc}", err=True)
            continue
        verdict = check(options.relevance, draft.subject, draft.body)
        if not verdict.relevant:
            click.echo(f"filtered {raw.source_ref}: {verdict.reason}", err=True)
            continue
        click.echo(draft.model_dump_json())


@click.group()
def sites() -> None:
    """Site definitions of forums and message boards (adapter html_pages)."""


def _item_json(item: Any, definition: Any, timezone: ZoneInfo) -> dict[str, Any]:
    from normalizers.opinion.post_time import parse_post_time

    spec = definition.listing.published
    published = parse_post_time(item.fields.get("published"), spec.formats if spec else [],
                                tz=timezone, now=datetime.now(UTC))
    return {"url": item.url, **item.fields,
            "published_at": published.isoformat() if published else None}


@sites.command("test")
@click.argument("definition_ref", metavar="DEFINITION")
@_file
@_url
@click.option("--detail", type=int, default=0, help="also fetch and read N detail pages")
@_config
@_source
def sites_test(definition_ref: str, file: Path | None, url: str | None, detail: int,
               config_path: Path | None, source_name: str | None) -> None:
    """Print what DEFINITION (config/sites/<name>.yaml) reads on a list page."""
    from adapters.opinion.html_pages import HtmlPagesOptions
    from adapters.opinion.sites import extract_list, load_site, read_html

    _one_of(file, url, required=False)
    setup = _setup(config_path, source_name, "sites-test")
    options = _options(HtmlPagesOptions, {**setup.options, "definition": definition_ref})
    definition = load_site(definition_ref)
    start = url or (options.start_urls or definition.start_urls)[0]
    content, content_type, where = _read(file, None if file else start, options)
    soup = read_html(content, content_type, definition.encoding)
    listing = extract_list(definition, soup, where)
    for item in listing.items:
        click.echo(json.dumps(_item_json(item, definition, setup.timezone), ensure_ascii=False))
    click.echo(f"{len(listing.items)} items; next page: {listing.next_url or 'none'}", err=True)
    if not listing.items:
        _fail(f"no element matched the item selector {definition.listing.item!r}")
    for item in listing.items[:detail]:
        page, page_type, _ = _read(None, item.url, options)
        raw = _raw(setup.name, item.url, page, page_type or "text/html", {
            "url": item.url, "site": options.site or definition.site, "page": "detail",
            "fields": item.fields})
        _print_draft(raw, setup, definition_ref, definition)


def _print_draft(raw: RawRecord, setup: _Setup, definition_ref: str,
                 definition: SiteDefinition) -> None:
    from adapters.opinion.sites import SITE_RESOURCE
    from normalizers.opinion.html_page import normalize

    context = NormalizerContext(setup.name, setup.timezone,
                                {**setup.options, "definition": definition_ref},
                                {SITE_RESOURCE: definition})
    try:
        click.echo(normalize(raw, context).model_dump_json())
    except Rejected as exc:
        click.echo(f"rejected {raw.source_ref}: {exc}", err=True)


@sites.command("extract")
@_file
@_url
@_config
@_source
def sites_extract(file: Path | None, url: str | None, config_path: Path | None,
                  source_name: str | None) -> None:
    """Print the generic extraction of one article page as JSON."""
    from adapters.opinion.sites import read_html
    from adapters.opinion.web_common import WebOptions
    from normalizers.opinion.article import extract_article

    _one_of(file, url)
    setup = _setup(config_path, source_name, "sites-extract")
    web = {k: v for k, v in setup.options.items() if k in WebOptions.model_fields}
    content, content_type, where = _read(file, url, _options(WebOptions, web))
    article = extract_article(read_html(content, content_type), where)
    click.echo(json.dumps({"url": where, **article.as_json()}, ensure_ascii=False, indent=2))
    if not article.text:
        sys.exit(1)
