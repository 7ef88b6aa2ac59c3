"""Article extraction quality: the gateway's generic extraction against trafilatura alone
and GNE, on the real pages under ``../shared/data/html``.

Each page has a gold file under ``bench/extract_gold/`` (the page's path with ``.json``):
the title, the date (``YYYY-MM-DD``) and the counts of the non-space characters of the
article's text, written from the page itself (see ``bench/extract_gold/README.md``; the
text itself is not kept, the pages belong to their sites). Per page and in total it
prints: title exact, date exact and the character F1 of the text against the gold
counts. List pages carry ``"kind": "list"``: they have no article, and the gateway must
say so (``Article.kind``); the comparisons have no such notion and are not scored there.

    .venv/bin/python bench/extract.py            # ../shared/data relative to the repo root
    .venv/bin/python bench/extract.py --data DIR --json

GNE (``pip install gne``) is a comparison only, not a project dependency: without it the
run says so and goes on. The exit status is 0 whenever the benchmark ran.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trafilatura  # noqa: E402

from adapters.opinion.sites import read_html  # noqa: E402
from normalizers.opinion.article import extract_article  # noqa: E402

GOLD = ROOT / "bench" / "extract_gold"
TARGET_F1 = 0.8
_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Found:
    """What one extractor found on one page."""

    title: str | None
    date: str | None
    text: str
    kind: str = "article"


@dataclass
class Score:
    """One extractor's results over the pages."""

    titles: list[bool] = field(default_factory=list)
    dates: list[bool] = field(default_factory=list)
    f1s: list[float] = field(default_factory=list)
    lists_recognised: list[bool] = field(default_factory=list)


def normal_title(text: str | None) -> str:
    """Titles compare after NFKC (full- and half-width alike) and folded whitespace."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text or "")).strip()


def normal_date(text: str | None) -> str | None:
    """The calendar day a date string names, as ``YYYY-MM-DD`` (the gold is a day)."""
    match = _DATE.search(text or "")
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups())
    return f"{year:04d}-{month:02d}-{day:02d}"


def char_counts(text: str) -> dict[str, int]:
    """How often each non-space character occurs in ``text`` (the gold's ``text_chars``)."""
    return dict(sorted(Counter(ch for ch in text if not ch.isspace()).items()))


def gold_text_fields(text: str) -> dict[str, Any]:
    """What a gold file keeps of an article's text: its character counts, their sum and
    the SHA-256 of the text with whitespace folded (runs of it to one space, none at the
    ends), so that a gold re-derived from the page can be checked against this one."""
    chars = char_counts(text)
    folded = " ".join(text.split())
    return {"text_len": sum(chars.values()),
            "text_sha256": hashlib.sha256(folded.encode("utf-8")).hexdigest(),
            "text_chars": chars}


def char_f1(found: str, gold: Mapping[str, int]) -> float:
    """F1 of the multisets of non-space characters of ``found`` and the gold's counts
    (order-free, as GNE's own evaluation)."""
    have = Counter(ch for ch in found if not ch.isspace())
    want = Counter(gold)
    common = sum((have & want).values())
    if not common:
        return 0.0
    precision, recall = common / sum(have.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def gateway(html: bytes) -> Found:
    article = extract_article(read_html(html, None))
    return Found(article.title, article.published, article.text, article.kind)


def trafilatura_alone(html: bytes) -> Found:
    """trafilatura 2 with its defaults (metadata on), as a user would call it."""
    text = str(read_html(html, None))
    document = trafilatura.bare_extraction(text, with_metadata=True)
    if document is None:
        return Found(None, None, "")
    return Found(getattr(document, "title", None), getattr(document, "date", None),
                 getattr(document, "text", None) or "")


def gne_extractor() -> Callable[[bytes], Found] | None:
    try:
        from gne import GeneralNewsExtractor
    except ImportError:
        return None

    def run(html: bytes) -> Found:
        result: dict[str, Any] = GeneralNewsExtractor().extract(str(read_html(html, None)))
        return Found(result.get("title"), result.get("publish_time"), result.get("content", ""))

    return run


def score_page(found: Found, gold: dict[str, Any], score: Score) -> str:
    if gold["kind"] == "list":
        recognised = found.kind == "list"
        score.lists_recognised.append(recognised)
        return f"list page: {'recognised' if recognised else 'NOT recognised'} as a list"
    title_ok = normal_title(found.title) == normal_title(gold["title"])
    date_ok = normal_date(found.date) == gold["date"]
    f1 = char_f1(found.text, gold["text_chars"])
    score.titles.append(title_ok)
    score.dates.append(date_ok)
    score.f1s.append(f1)
    miss = "" if title_ok else f"  title={found.title!r}"
    miss += "" if date_ok else f"  date={found.date!r} (gold {gold['date']})"
    return f"title {'ok' if title_ok else 'MISS'}  date {'ok' if date_ok else 'MISS'}  " \
           f"F1 {f1:.3f}{miss}"


def share(values: list[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def summary(name: str, score: Score) -> dict[str, Any]:
    good = [f >= TARGET_F1 for f in score.f1s]
    return {
        "extractor": name, "pages": len(score.f1s),
        "title_exact": share(score.titles), "date_exact": share(score.dates),
        "f1_at_least_0_8": share(good), "mean_f1": sum(score.f1s) / max(len(score.f1s), 1),
        "lists_recognised": share(score.lists_recognised) if score.lists_recognised else None,
    }


def run(data: Path, as_json: bool) -> int:
    html_dir = data / "html"
    if not html_dir.is_dir():
        print(f"no pages at {html_dir} (give --data)", file=sys.stderr)
        return 2
    extractors: dict[str, Callable[[bytes], Found]] = {
        "gateway": gateway, "trafilatura": trafilatura_alone}
    gne = gne_extractor()
    if gne is None:
        print("note: GNE is not installed (pip install gne); it is left out", file=sys.stderr)
    else:
        extractors["gne"] = gne
    scores = {name: Score() for name in extractors}
    for gold_file in sorted(GOLD.rglob("*.json")):
        gold = json.loads(gold_file.read_text(encoding="utf-8"))
        page = html_dir / gold["page"].removeprefix("html/")
        if not page.is_file():
            print(f"missing page {page}", file=sys.stderr)
            continue
        html = page.read_bytes()
        for name, extract in extractors.items():
            line = score_page(extract(html), gold, scores[name])
            if not as_json:
                print(f"{gold['page']:<32} {name:<12} {line}")
    totals = [summary(name, score) for name, score in scores.items()]
    if as_json:
        print(json.dumps(totals, ensure_ascii=False, indent=1))
    else:
        print_totals(totals)
    return 0


def print_totals(totals: list[dict[str, Any]]) -> None:
    print()
    print(f"{'extractor':<12} {'pages':>5} {'title exact':>11} {'date exact':>10} "
          f"{'F1>=0.8':>8} {'mean F1':>8} {'lists recognised':>16}")
    for row in totals:
        lists = "-" if row["lists_recognised"] is None else f"{row['lists_recognised']:.0%}"
        print(f"{row['extractor']:<12} {row['pages']:>5} {row['title_exact']:>11.0%} "
              f"{row['date_exact']:>10.0%} {row['f1_at_least_0_8']:>8.0%} "
              f"{row['mean_f1']:>8.3f} {lists:>16}")
    print("targets: F1 >= 0.8 on >= 95 % of pages, titles >= 95 %, dates >= 90 %")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="the shared data folder (default: ../shared/data)")
    parser.add_argument("--json", action="store_true", help="print the totals as JSON")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # GNE and lxml warn about the pages' markup
    return run(args.data, args.json)


if __name__ == "__main__":
    sys.exit(main())
