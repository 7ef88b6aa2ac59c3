"""An article page's title and date as the page shows them, not as its ``<meta>`` says.

Title: the heading (``h1``–``h3`` or an element whose class names a title) that the
document's ``<title>`` also carries; a page's ``<title>`` often adds the site name
(``…_网易订阅``), and a ``<meta>`` title is sometimes another article's.

Date: a government document is dated by its 成文日期 (the day it was written), which the
page shows in its header table, while the page's ``<meta>`` and 发布日期 may be the day
it was (re)published years later; a news page shows 发布时间 or a bare date right under
its title. So: 成文日期 anywhere; then a labelled date (发布时间, 发布日期, 日期, 时间) or a
full date (``2019年11月25日``, ``2019-09-07 13:43``) in the text right after the title;
then the extractor's own (meta) date. Pure: parsed markup in, strings out.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from bs4 import BeautifulSoup, Tag

from normalizers.common.text import clean_line

_HEADINGS = "h1, h2, h3, [class*=title], [id*=title], [class*=headline], [itemprop=headline]"
_WRITTEN = re.compile(r"成文日期\s*[:：]?\s*(?P<date>\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日)")
_LABELLED = re.compile(
    r"(?:发布时间|发布日期|发表时间|发文日期|日期|时间)\s*[:：]\s*"
    r"(?P<date>(?:\d{2,4}\s*[-/.年]\s*)?\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?"
    r"(?:\s*\d{1,2}\s*[:：]\s*\d{2}(?:\s*[:：]\s*\d{2})?)?)"
)
_FULL = re.compile(
    r"(?P<date>(?:19|20)\d{2}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?"
    r"(?:\s*\d{1,2}\s*[:：]\s*\d{2}(?:\s*[:：]\s*\d{2})?)?)"
)
_PARTS = re.compile(
    r"\s*(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:\s*(?P<H>\d{1,2})\s*[:：]\s*(?P<M>\d{2})(?:\s*[:：]\s*(?P<S>\d{2}))?)?"
)
_YEAR = re.compile(r"(?:19|20)\d{2}")
_AFTER_TITLE = 400  # characters after the title where the page states the date
_SIMILAR = 0.6
_MAX_HEADINGS = 200  # headings compared (a hostile page may have thousands)
_MAX_TITLE = 300  # characters of <title> compared


def _document_title(soup: BeautifulSoup) -> str:
    og = soup.find("meta", attrs={"property": "og:title"})
    if isinstance(og, Tag) and isinstance(og.get("content"), str):
        return clean_line(str(og["content"]))
    return clean_line(soup.title.get_text()) if soup.title else ""


def _likeness(heading: str, document_title: str) -> float:
    """How much of ``heading`` the ``<title>`` carries (1.0: all of it)."""
    if not heading or not document_title:
        return 0.0
    if heading in document_title:
        return 1.0
    match = SequenceMatcher(None, heading, document_title, autojunk=False)
    block = match.find_longest_match(0, len(heading), 0, len(document_title))
    return block.size / len(heading)


def _without_label(heading: str, document_title: str) -> str:
    """``原创 最不愁吃肉的国家…`` as ``最不愁吃肉的国家…``: a short label before the
    headline (原创, 独家, 置顶) that the ``<title>`` does not carry is not the title's."""
    label, _, rest = heading.partition(" ")
    if rest and len(label) <= 4 and heading not in document_title and rest in document_title:
        return rest
    return heading


def find_title(soup: BeautifulSoup, fallback: str | None) -> str | None:
    """The page's visible headline (see the module's docstring)."""
    document_title = _document_title(soup)[:_MAX_TITLE]
    best, best_score = None, 0.0
    for element in soup.select(_HEADINGS, limit=_MAX_HEADINGS):
        text = clean_line(element.get_text(" "))
        if not 4 <= len(text) <= 120:
            continue
        score = _likeness(text, document_title) + (0.01 if element.name == "h1" else 0.0)
        if score > best_score:
            best, best_score = text, score
    if best is not None and best_score >= _SIMILAR:
        return _without_label(best, document_title)
    first_h1 = soup.find("h1")
    if isinstance(first_h1, Tag) and len(clean_line(first_h1.get_text())) >= 4:
        return clean_line(first_h1.get_text())
    return fallback or re.split(r"\s*[_|｜]\s*", document_title)[0] or None


def _with_year(found: str, fallback: str | None) -> str:
    """A date the page writes without its year (``10-08 12:00``) takes the year of the
    extractor's date, else of the text itself (``18-03-08``: 2018)."""
    if _YEAR.match(found.strip()):
        return found
    two_digit = re.match(r"\s*(\d{2})\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}", found)
    if two_digit:
        return "20" + found.strip()
    year = _YEAR.search(fallback or "")
    return f"{year.group()}-{found.strip()}" if year else found


def _canonical(found: str) -> str:
    """``2019年9月7日 13:43`` as ``2019-09-07 13:43``; what does not parse, unchanged."""
    parts = _PARTS.match(found)
    if parts is None:
        return found
    day = f"{int(parts['y']):04d}-{int(parts['m']):02d}-{int(parts['d']):02d}"
    if parts["H"] is None:
        return day
    seconds = f":{int(parts['S']):02d}" if parts["S"] else ""
    return f"{day} {int(parts['H']):02d}:{int(parts['M']):02d}{seconds}"


def find_date(page_text: str, title: str | None, fallback: str | None) -> str | None:
    """The document's date as the page states it (see the module's docstring)."""
    written = _WRITTEN.search(page_text)
    if written:
        return _canonical(written["date"])
    start = page_text.find(title) + len(title) if title and title in page_text else 0
    window = page_text[start:start + _AFTER_TITLE] if start else page_text[:_AFTER_TITLE * 2]
    labelled = _LABELLED.search(window)
    if labelled:
        return _canonical(_with_year(labelled["date"], fallback))
    full = _FULL.search(window)
    return _canonical(full["date"]) if full else fallback
