"""Which lines of a page are the article's, and where on a page the article is.

Generic extractors go wrong on Chinese government and news pages in a few known ways:
the whole "text" is the site's URL, a disclaimer (免责声明), a copyright line or a share
bar. This module measures text by its *sentences* (lines that read as prose, not as
labels, links or boilerplate) so that such a result counts as thin, and offers two
extractors of its own for the fallback: a paragraph-density one (the element whose
paragraphs hold the most prose, as readability and GNE do it) and the largest run of
sentence lines on the page. Everything is pure: parsed markup in, text out.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator

from bs4 import BeautifulSoup, Comment, Declaration, Doctype, Tag
from bs4.element import NavigableString, PageElement, ProcessingInstruction

from normalizers.common.html_text import DROPPED, element_text

# Lines that are never the article: credits, disclaimers, copyright, share bars, app
# promotions, "back to the home page" links (by how they start) ...
_BOILERPLATE = re.compile(
    r"^\s*[【\[(（]?\s*(?:免责声明|特别声明|版权声明|版权所有|copyright|©|责任编辑|编辑[:：]"
    r"|本文来源[:：]|来源[:：]\S{0,20}\s*责任编辑|打印本页|关闭窗口|分享到|分享至|扫一扫|用微信扫描"
    r"|微信扫一扫|返回\S{0,8}首页|收藏本页|字号[:：]|\S{0,4}ICP备|\S{0,4}公网安备"
    r"|安装\S{0,8}客户端|下载客户端|点击进入专题|【纠错】)",
    re.IGNORECASE,
)
# ... and lines that are only a link's label (whole line: 关闭 may start a sentence).
_LABEL_ONLY = re.compile(
    r"^\s*[【\[]?\s*(?:打印|关闭|举报|纠错|收藏|相关新闻|相关阅读|延伸阅读)\s*[:：】\]]?\s*$")
# ... and short lines that say so anywhere (``All Rights Reserved 新浪公司 版权所有``).
_COPYRIGHT = re.compile(r"版权所有|all rights reserved|copyright\s*©", re.IGNORECASE)
_SHORT_LINE = 60
_URL_ONLY = re.compile(r"^\s*(?:https?://|www\.)\S*\s*$", re.IGNORECASE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_SENTENCE_END = re.compile(r"[。！？；!?;…」”\"）)]\s*$")
_NOT_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)
_PUNCTUATION = re.compile(r"[，。！？；、：,.!?;]")
_BLOCKS = frozenset({"div", "td", "section", "article", "main", "li", "body", "dd", "center"})
_INLINE = frozenset({"span", "font", "strong", "b", "em", "i", "u", "p", "h2", "h3", "h4"})
_MIN_LINE = 12  # a line without sentence punctuation needs this many CJK characters


def is_boilerplate(line: str) -> bool:
    """A line that is not content wherever it stands (see ``_BOILERPLATE``)."""
    if len(line) < _SHORT_LINE and _COPYRIGHT.search(line):
        return True
    return bool(_BOILERPLATE.match(line) or _LABEL_ONLY.match(line) or _URL_ONLY.match(line))


def is_sentence(line: str) -> bool:
    """A line that reads as prose: Chinese text ending like a sentence, or long enough."""
    line = line.strip()
    if not line or is_boilerplate(line):
        return False
    cjk = len(_CJK.findall(line))
    return cjk >= _MIN_LINE or (cjk >= 4 and bool(_SENTENCE_END.search(line)))


def sentence_chars(text: str) -> int:
    """How many characters of ``text`` are in sentence lines (the measure of "thin")."""
    return sum(len(line.strip()) for line in text.split("\n") if is_sentence(line))


def share_inside(part: str, whole: str) -> float:
    """How much of ``part`` (its non-space characters, as a multiset) ``whole`` holds."""
    have = Counter(ch for ch in part if not ch.isspace())
    if not have:
        return 0.0
    inside = have & Counter(ch for ch in whole if not ch.isspace())
    return sum(inside.values()) / sum(have.values())


def without_boilerplate(text: str) -> str:
    """``text`` less its boilerplate lines, paragraphs kept."""
    kept = [line for line in text.split("\n") if not is_boilerplate(line)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _prose_strings(root: Tag) -> Iterator[NavigableString]:
    """The text nodes under ``root`` outside links and non-content elements, in one
    iterative pass (broken pages nest elements thousands deep)."""
    stack: list[tuple[PageElement, bool]] = [(root, False)]
    while stack:
        node, excluded = stack.pop()
        if isinstance(node, Tag):
            excluded = excluded or node.name == "a" or node.name in DROPPED
            stack.extend((child, excluded) for child in reversed(node.contents))
        elif isinstance(node, NavigableString) and not excluded \
                and not isinstance(node, _NOT_TEXT):
            yield node


def _container(node: NavigableString) -> Tag | None:
    """The element a text belongs to as a paragraph of: a ``<p>``'s parent, or the
    nearest block element for text written straight into a ``<div>``/``<td>``."""
    parent = node.parent
    while isinstance(parent, Tag) and parent.name in _INLINE:
        if parent.name == "p":
            return parent.parent if isinstance(parent.parent, Tag) else parent
        parent = parent.parent
    return parent if isinstance(parent, Tag) and parent.name in _BLOCKS else None


def _prose_weight(text: str) -> float:
    """Chinese characters, counted fully in punctuated prose and by a quarter in text
    without any (headlines of promoted items, labels, menus)."""
    cjk = len(_CJK.findall(text))
    return float(cjk) if _PUNCTUATION.search(text) else cjk / 4


def _paragraph_credit(root: Tag) -> tuple[dict[int, float], dict[int, Tag]]:
    """Per element (by ``id``), the prose of the paragraphs it holds itself."""
    own: dict[int, float] = defaultdict(float)
    elements: dict[int, Tag] = {}
    for node in _prose_strings(root):
        size = _prose_weight(str(node))
        container = _container(node)
        if size >= 4 and container is not None:
            elements[id(container)] = container
            own[id(container)] += size
    return own, elements


def densest_element(soup: BeautifulSoup) -> Tag | None:
    """The element whose own paragraphs hold the most prose (text outside links).

    An element scores its own paragraphs plus half of its children's, so an article
    split into one ``<div>`` per paragraph is still found as one; then, when one
    element inside the winner holds at least half of all the prose under the winner by
    itself (the article inside a column that also lists promotions), it is taken.
    """
    own, elements = _paragraph_credit(soup.body or soup)
    total: dict[int, float] = defaultdict(float, own)
    for key, element in list(elements.items()):
        parent = element.parent
        if isinstance(parent, Tag):
            elements.setdefault(id(parent), parent)
            total[id(parent)] += own[key] / 2
    if not total:
        return None
    best = elements[max(total, key=lambda key: total[key])]
    inside = {id(element) for element in best.descendants if isinstance(element, Tag)}
    prose = own.get(id(best), 0.0) + sum(own[key] for key in own if key in inside)
    inner = [elements[key] for key in own if key in inside and own[key] >= prose / 2]
    return max(inner, key=lambda element: own[id(element)]) if inner else best


def density_text(soup: BeautifulSoup) -> str:
    """The text of ``densest_element``, less boilerplate lines."""
    element = densest_element(soup)
    return without_boilerplate(element_text(element)) if element is not None else ""


def largest_sentence_block(text: str) -> str:
    """The longest run of sentence lines in ``text`` (blank lines do not break a run)."""
    best: tuple[int, int] = (0, 0)  # (start, end) in ``lines``
    lines = [line.strip() for line in text.split("\n")]
    kept = [line for line in lines if line]
    start, size, best_size = 0, 0, 0
    for index, line in enumerate(kept):
        if not is_sentence(line):
            start, size = index + 1, 0
            continue
        size += len(line)
        if size > best_size:
            best, best_size = (start, index + 1), size
    return "\n\n".join(kept[best[0]:best[1]])
