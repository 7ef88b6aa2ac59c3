"""HTML to clean plain text (BeautifulSoup with lxml): what a person reads, no markup.

Scripts, styles and other non-content elements are dropped; whitespace inside the
markup is folded as a browser folds it; block elements become line breaks and
paragraphs blank lines, so the text keeps its paragraphs. Malformed markup is fine
(lxml repairs it). The feed, page and e-mail channels share this.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bs4 import BeautifulSoup, Comment, Declaration, Doctype, Tag
from bs4.element import NavigableString, PageElement, ProcessingInstruction

from normalizers.common.charset import decode_text
from normalizers.common.text import clean_text

DROPPED = frozenset({
    "script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "canvas",
    "head", "title", "meta", "link", "button", "select", "textarea", "input", "form",
})
_PARAGRAPHS = frozenset({
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl",
    "figure", "hr",
})
_LINES = frozenset({
    "div", "section", "article", "main", "header", "footer", "nav", "aside", "li", "dt", "dd",
    "tr", "address", "center", "fieldset", "figcaption", "caption", "details", "summary",
})
_SKIPPED_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)
_BR = 3  # a break marker that adds up, unlike those of block elements
_FOLD = re.compile(r"[ \t\r\n\f]+")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)


def parse_html(markup: str | bytes, content_type: str | None = None) -> BeautifulSoup:
    """A forgiving parse of ``markup``; bytes are decoded by ``normalizers.common.charset``."""
    text = decode_text(markup, content_type) if isinstance(markup, bytes) else markup
    # An XML declaration would make BeautifulSoup warn that this looks like XML.
    return BeautifulSoup(_XML_DECLARATION.sub("", text, count=1), "lxml")


def _marker(name: str) -> int:
    return 2 if name in _PARAGRAPHS else 1 if name in _LINES else 0


def _closing(name: str) -> str | int:
    return " " if name in ("td", "th") else _marker(name)


def _pieces(root: Tag) -> Iterator[str | int]:
    """Text pieces in document order, and break markers (1 = line, 2 = paragraph,
    ``_BR`` = one more line).

    Iterative (a stack, not recursion): broken pages nest thousands of elements deep.
    """
    stack: list[tuple[PageElement, bool]] = [(root, False)]
    in_pre = 0
    while stack:
        node, leaving = stack.pop()
        if leaving and isinstance(node, Tag):
            in_pre -= node.name == "pre"
            yield _closing(node.name)
        elif isinstance(node, NavigableString):
            if not isinstance(node, _SKIPPED_STRINGS):
                yield str(node) if in_pre else _FOLD.sub(" ", str(node))
        elif isinstance(node, Tag) and (node.name not in DROPPED or node is root):
            if node.name == "br":
                yield _BR
                continue
            yield _marker(node.name)
            in_pre += node.name == "pre"
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))


def _join(pieces: Iterator[str | int]) -> str:
    out: list[str] = []
    pending = 0
    for piece in pieces:
        if isinstance(piece, int):  # two <br> in a row are a paragraph break
            pending = min(pending + 1, 2) if piece == _BR else max(pending, piece)
            continue
        if not piece.strip() and pending:
            continue
        if pending and out:
            out.append("\n" * pending)
        pending = 0
        out.append(piece)
    return "".join(out)


def element_text(element: Tag) -> str:
    """The clean text of one element (with its paragraphs); the tree is not changed."""
    return clean_text(_join(_pieces(element)))


def html_to_text(markup: str | bytes, content_type: str | None = None) -> str:
    """The clean text of an HTML document or fragment."""
    if isinstance(markup, str) and "<" not in markup and "&" not in markup:
        return clean_text(markup)  # plain text already (BeautifulSoup would warn on a URL)
    soup = parse_html(markup, content_type)
    body = soup.body or soup
    return element_text(body)
