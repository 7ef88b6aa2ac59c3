"""The extraction benchmark's measures and gold files, and (an extra, when
../shared/data is there) the gateway's extraction on the real pages against the issue's
targets."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from bench.extract import (
    GOLD,
    Score,
    char_counts,
    char_f1,
    gateway,
    gold_text_fields,
    normal_date,
    normal_title,
    score_page,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "html"
GOLD_FILES = sorted(GOLD.rglob("*.json"))


def test_measures() -> None:
    assert char_f1("甲乙丙", char_counts("甲乙丙")) == 1.0
    assert char_f1("", char_counts("甲")) == 0.0
    assert char_f1("甲乙", char_counts("甲乙丙丁")) == pytest.approx(2 / 3)
    assert char_f1("甲 乙\n", char_counts("甲乙")) == 1.0  # whitespace does not count
    assert char_f1("甲甲乙", {"甲": 1, "乙": 1}) == pytest.approx(0.8)  # counts matter
    assert char_counts("乙 甲\n乙") == {"甲": 1, "乙": 2}
    assert normal_date("2019年9月7日 13:43") == "2019-09-07"
    assert normal_date("2019-09-07T06:52:51+08:00") == "2019-09-07"
    assert normal_date("没有日期") is None
    assert normal_title(" 棱镜｜数据业  大整顿 ") == "棱镜|数据业 大整顿"


def test_gold_files_are_complete() -> None:
    assert len(GOLD_FILES) == 34
    for path in GOLD_FILES:
        gold = json.loads(path.read_text(encoding="utf-8"))
        assert path.relative_to(GOLD).with_suffix(".html").as_posix() == gold["page"]
        assert gold["kind"] in ("article", "list")
        if gold["kind"] == "article":
            # no article text is kept (the pages belong to their sites), only its counts
            assert set(gold) == {"page", "kind", "title", "date",
                                 "text_len", "text_sha256", "text_chars"}
            assert gold["title"] and gold["text_chars"]
            assert normal_date(gold["date"]) == gold["date"]
            chars = gold["text_chars"]
            assert all(len(ch) == 1 and not ch.isspace() for ch in chars)
            assert all(isinstance(n, int) and n > 0 for n in chars.values())
            assert sum(chars.values()) == gold["text_len"]
            assert re.fullmatch(r"[0-9a-f]{64}", gold["text_sha256"])
        else:
            assert set(gold) == {"page", "kind"}


def test_gold_text_fields() -> None:
    """What a re-derived gold text must give: counts, their sum and the folded text's hash."""
    fields = gold_text_fields(" 甲乙\n\n 甲。\u3000")
    assert fields["text_chars"] == {"。": 1, "甲": 2, "乙": 1}
    assert fields["text_len"] == 4
    # SHA-256 of "甲乙 甲。" in UTF-8: whitespace runs folded to one space, ends stripped
    assert fields["text_sha256"] == (
        "7b21356bec8d5dc93719fb3148b6b634e106bfb6d00b87d9fecee18b41446832")
    assert fields["text_sha256"] != gold_text_fields("甲乙甲。")["text_sha256"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/html is not there")
def test_real_pages_meet_the_targets() -> None:
    """An extra: titles >= 95 % exact, dates >= 90 %, text F1 >= 0.8 on >= 95 % of pages."""
    score = Score()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the pages' markup makes lxml and bs4 warn
        for path in GOLD_FILES:
            gold = json.loads(path.read_text(encoding="utf-8"))
            score_page(gateway((SHARED / gold["page"]).read_bytes()), gold, score)
    pages = len(score.f1s)
    assert sum(score.titles) >= 0.95 * pages
    assert sum(score.dates) >= 0.90 * pages
    assert sum(f1 >= 0.8 for f1 in score.f1s) >= 0.95 * pages
