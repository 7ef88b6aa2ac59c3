"""Site definitions as data, and reading pages by them: pure, no files, no network.

A definition (``config/sites/<name>.yaml``, loaded by ``adapters.opinion.sites``) names
the start URL(s), the item selector of a list page and, per field, a CSS selector and
where the value is (``text``, ``html`` or an attribute, or several tried in turn),
optionally a regular expression and ``strptime`` formats; how to find the next page (a
next-link selector or a URL pattern) and how many pages to read; and optionally selectors
of a detail page's body. See docs/opinion.md.

A field written as a plain string is a selector whose text is the value; an empty
selector means the item element itself. The opinion adapter parses the definition and
hands it to the ``html_page`` normalizer in its context, so the normalizer reads no file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import soupsieve
from bs4 import BeautifulSoup, Tag
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from normalizers.common.charset import codec_name
from normalizers.common.html_text import element_text, parse_html
from normalizers.common.text import clean_line

# The key of the parsed definition in ``NormalizerContext.resources``.
SITE_RESOURCE = "site_definition"
_COUNT = re.compile(r"(\d+(?:\.\d+)?)\s*([万萬千kKwW]?)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _check_selector(value: str) -> str:
    if value.strip():
        try:
            soupsieve.compile(value)
        except soupsieve.SelectorSyntaxError as exc:
            raise ValueError(f"not a valid CSS selector: {value!r} ({exc.args[0]})") from None
    return value


class FieldSpec(_Strict):
    """Where one value is: ``selector`` (empty: the element itself), ``attr`` (``text``,
    ``html`` or an attribute name; a list is tried in order), ``regex`` (group 1 or the
    whole match), ``formats`` (``strptime`` formats of a date)."""

    selector: str = ""
    attr: list[str] = Field(default_factory=list)
    regex: str | None = None
    formats: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"selector": value} if isinstance(value, str) else value

    @field_validator("attr", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    _selector_ok = field_validator("selector")(_check_selector)

    @field_validator("regex")
    @classmethod
    def _regex_ok(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class ListSpec(_Strict):
    """A list page: one ``item`` per post, and its fields."""

    item: str
    title: FieldSpec
    link: FieldSpec
    author: FieldSpec | None = None
    published: FieldSpec | None = None
    reply_count: FieldSpec | None = None
    view_count: FieldSpec | None = None
    summary: FieldSpec | None = None

    _item_ok = field_validator("item")(_check_selector)


class Pagination(_Strict):
    """The next page: a ``next`` link, or a URL ``pattern`` with ``{page}`` in it (page n
    is ``first + (n - 1) * step``; relative patterns are resolved against the start URL)."""

    next: FieldSpec | None = None
    pattern: str | None = None
    first: int = 1
    step: int = Field(default=1, ge=1)
    max_pages: int = Field(default=3, ge=1, le=100)

    @model_validator(mode="after")
    def _one_way(self) -> Pagination:
        if self.next is not None and self.pattern is not None:
            raise ValueError("give either next or pattern, not both")
        if self.pattern is not None and "{page}" not in self.pattern:
            raise ValueError("pattern must contain {page}")
        return self


class DetailSpec(_Strict):
    """The detail page of a post: ``body`` selectors (the first that matches wins; none:
    generic article extraction), elements to ``drop`` from the body, and fields the list
    page lacks."""

    fetch: bool = True
    body: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)
    title: FieldSpec | None = None
    author: FieldSpec | None = None
    published: FieldSpec | None = None

    @field_validator("body", "drop", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("body", "drop")
    @classmethod
    def _selectors_ok(cls, value: list[str]) -> list[str]:
        return [_check_selector(v) for v in value]


class SiteDefinition(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    site: str = Field(min_length=1, description="the site's name as the complaint shows it")
    start_urls: list[str] = Field(min_length=1)
    encoding: str | None = Field(default=None, description="force this encoding")
    listing: ListSpec = Field(alias="list")
    pagination: Pagination = Field(default_factory=Pagination)
    detail: DetailSpec = Field(default_factory=DetailSpec)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None and codec_name(value) is None:
            raise ValueError(f"unknown encoding {value!r}")
        return value

    @field_validator("start_urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        return [http_url(url) for url in value]


def http_url(url: str) -> str:
    """``url`` if it is an absolute http or https URL (a validator of every configured
    web address: site definitions, feed and page sources)."""
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


# -- extraction --------------------------------------------------------------------


def read_html(content: bytes, content_type: str | None = None,
              encoding: str | None = None) -> BeautifulSoup:
    """Parse a page; the bytes decide the encoding unless the definition forces one."""
    codec = codec_name(encoding)
    if codec is not None:
        return parse_html(content.decode(codec, errors="replace"))
    return parse_html(content, content_type)


@dataclass
class ListItem:
    """One post on a list page: its absolute URL and the raw values of its fields."""

    url: str
    fields: dict[str, Any] = field(default_factory=dict)
    html: str = ""


@dataclass
class ListPage:
    items: list[ListItem]
    next_url: str | None


def _raw_value(element: Tag, attr: str) -> str | None:
    if attr == "text":
        return element_text(element)
    if attr == "html":
        return element.decode_contents()
    value = element.get(attr)
    if isinstance(value, list):
        value = " ".join(value)
    return value


def field_value(root: Tag, spec: FieldSpec | None, default_attr: str = "text") -> str | None:
    """The value ``spec`` finds under ``root``, or ``None``."""
    if spec is None:
        return None
    element = root.select_one(spec.selector) if spec.selector.strip() else root
    if element is None:
        return None
    value = None
    for attr in spec.attr or [default_attr]:
        value = _raw_value(element, attr)
        if value is not None and value.strip():
            break
    if value is None or not value.strip():
        return None
    if spec.regex is not None:
        found = re.search(spec.regex, value)
        if found is None:
            return None
        value = found.group(1) if found.groups() else found.group(0)
    return value.strip()


def parse_count(text: str | None) -> int | None:
    """``1171`` → 1171, ``1.2万`` → 12000, ``3k`` → 3000; ``None`` if no number."""
    if not text:
        return None
    found = _COUNT.search(text.replace(",", ""))
    if found is None:
        return None
    factor = {"万": 10000, "萬": 10000, "w": 10000, "W": 10000, "千": 1000, "k": 1000,
              "K": 1000}.get(found.group(2), 1)
    return int(float(found.group(1)) * factor)


def _item(element: Tag, listing: ListSpec, page_url: str) -> ListItem | None:
    link = field_value(element, listing.link, "href")
    if not link or link.startswith(("javascript:", "#")):
        return None
    fields: dict[str, Any] = {
        "title": clean_line(field_value(element, listing.title) or ""),
        "author": clean_line(field_value(element, listing.author) or "") or None,
        "published": field_value(element, listing.published),
        "reply_count": parse_count(field_value(element, listing.reply_count)),
        "view_count": parse_count(field_value(element, listing.view_count)),
        "summary": field_value(element, listing.summary),
    }
    return ListItem(urljoin(page_url, link), fields, str(element))


def extract_list(definition: SiteDefinition, soup: BeautifulSoup, page_url: str,
                 page: int = 1, start_url: str | None = None) -> ListPage:
    """The items of one list page (in page order, each URL once) and the next page's URL."""
    items: list[ListItem] = []
    seen: set[str] = set()
    for element in soup.select(definition.listing.item):
        item = _item(element, definition.listing, page_url)
        if item is not None and item.url not in seen:
            seen.add(item.url)
            items.append(item)
    return ListPage(items, next_page(definition, soup, page_url, page, start_url or page_url))


def next_page(definition: SiteDefinition, soup: BeautifulSoup, page_url: str, page: int,
              start_url: str) -> str | None:
    """The URL of page ``page + 1``, or ``None`` when there is none."""
    pagination = definition.pagination
    if pagination.pattern is not None:
        number = pagination.first + page * pagination.step
        return urljoin(start_url, pagination.pattern.replace("{page}", str(number)))
    if pagination.next is not None:
        link = field_value(soup, pagination.next, "href")
        if link and not link.startswith(("javascript:", "#")):
            found = urljoin(page_url, link)
            return found if found != page_url else None
    return None
