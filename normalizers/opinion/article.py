"""Generic article extraction that finds the article: title, date, author and main text
of a page for which no site definition says where they are.

trafilatura does most pages well, but on some it returns a *thin* text: the site's URL,
a disclaimer (免责声明), a copyright line, a share bar. So its result is measured by its
sentences (``normalizers.opinion.article_text``) after boilerplate lines are dropped, and when
fewer than ``THIN_SENTENCE_CHARS`` characters of sentences are left the next extractor
is asked: trafilatura favouring recall, then a paragraph-density extractor, then the
largest block of sentence lines on the page. When every one is thin, the one with the
most sentences wins (a citizen's short post is thin and still the post).

The title is the page's visible headline and the date the one the page states next to
it (``normalizers.opinion.article_meta``), before what ``<meta>`` says. A page whose prose is
mostly link text (a list of posts or news) is reported as ``kind="list"``. Pure: the
parsed page in, an ``Article`` out; nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import trafilatura
from bs4 import BeautifulSoup
from trafilatura.settings import use_config

from normalizers.common.html_text import element_text
from normalizers.common.text import clean_line, clean_text
from normalizers.opinion.article_meta import find_date, find_title
from normalizers.opinion.article_text import (
    density_text,
    largest_sentence_block,
    sentence_chars,
    share_inside,
    without_boilerplate,
)

PageKind = Literal["article", "list"]
THIN_SENTENCE_CHARS = 30  # fewer characters of sentences than this is not an article's text
LIST_LINK_SHARE = 0.75  # a list page: more of its text in links than this share
LIST_MAX_SENTENCE_CHARS = 400  # and less prose than this in its main text
TIGHTER = 0.95  # the density text replaces trafilatura's when shorter than this share of it
INSIDE = 0.85  # and when trafilatura's text holds at least this share of its characters

_EXTRACTION = use_config()
_EXTRACTION.set("DEFAULT", "MIN_EXTRACTED_SIZE", "10")  # citizens' posts are often short
_EXTRACTION.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")
_EXTRACTION.set("DEFAULT", "EXTENSIVE_DATE_SEARCH", "off")


@dataclass(frozen=True)
class Article:
    """What generic extraction finds on an article page."""

    title: str | None
    author: str | None
    published: str | None
    text: str
    site: str | None = None
    kind: PageKind = "article"

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "published": self.published, "author": self.author,
                "site": self.site, "kind": self.kind, "text": self.text}


def _found(document: Any, name: str) -> str | None:
    """A field of trafilatura's result (a ``Document``, or a dict in older releases)."""
    value = document.get(name) if isinstance(document, dict) else getattr(document, name, None)
    return value if isinstance(value, str) and value.strip() else None


def _trafilatura(markup: str, url: str | None, *, recall: bool) -> Any:
    return trafilatura.bare_extraction(
        markup, url=url, with_metadata=not recall, include_comments=False,
        favor_recall=recall, config=_EXTRACTION,
    )


def _fallbacks(soup: BeautifulSoup, markup: str, url: str | None) -> list[Callable[[], str]]:
    """The extractors after the first, cheapest and closest to trafilatura first."""
    return [
        lambda: clean_text(_found(_trafilatura(markup, url, recall=True), "text") or ""),
        lambda: density_text(soup),
        lambda: largest_sentence_block(element_text(soup.body or soup)),
    ]


def _tightened(soup: BeautifulSoup, text: str) -> str:
    """The density extractor's text when it is a part of ``text`` and clearly shorter:
    on news portals trafilatura keeps blocks around the article (promotions, related
    headlines, captions of other items) that the paragraph-densest element leaves out."""
    dense = density_text(soup)
    if (sentence_chars(dense) >= THIN_SENTENCE_CHARS and len(dense) < len(text) * TIGHTER
            and share_inside(dense, text) >= INSIDE):
        return dense
    return text


def main_text(soup: BeautifulSoup, first: str, markup: str, url: str | None) -> str:
    """``first`` (trafilatura's text) unless it is thin; else the first fallback that is
    not, else whichever had the most sentences; a text that is not thin is tightened."""
    best = without_boilerplate(first)
    if sentence_chars(best) >= THIN_SENTENCE_CHARS:
        return _tightened(soup, best)
    for extract in _fallbacks(soup, markup, url):
        text = without_boilerplate(extract())
        if sentence_chars(text) >= THIN_SENTENCE_CHARS:
            return _tightened(soup, text)
        if sentence_chars(text) > sentence_chars(best):
            best = text
    return best or element_text(soup.body or soup)


def page_kind(soup: BeautifulSoup, text: str) -> PageKind:
    """``list`` when the page's text is mostly link text and its main text is thin."""
    body = soup.body or soup
    all_text = len(body.get_text(strip=True))
    link_text = sum(len(a.get_text(strip=True)) for a in body.find_all("a"))
    linky = all_text > 0 and link_text / all_text > LIST_LINK_SHARE
    return "list" if linky and sentence_chars(text) < LIST_MAX_SENTENCE_CHARS else "article"


def extract_article(soup: BeautifulSoup, url: str | None = None) -> Article:
    """Title, author, date and main text of an article page, found generically."""
    markup = str(soup)
    document = _trafilatura(markup, url, recall=False)
    text = main_text(soup, clean_text(_found(document, "text") or ""), markup, url)
    title = find_title(soup, clean_line(_found(document, "title") or "") or None)
    page_text = element_text(soup.body or soup)
    return Article(
        title=title,
        author=clean_line(_found(document, "author") or "") or None,
        published=find_date(page_text, title, _found(document, "date")),
        text=text,
        site=clean_line(_found(document, "sitename") or "") or None,
        kind=page_kind(soup, text),
    )
