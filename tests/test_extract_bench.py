"""The extraction benchmark's measures and gold files, and (an extra, when
../shared/data is there) the gateway's extraction on the real pages against the issue's
targets."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from bench.extract import GOLD, Score, char_f1, gateway, normal_date, normal_title, score_page

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "html"
GOLD_FILES = sorted(GOLD.rglob("*.json"))


def test_measures() -> None:
    assert char_f1("甲乙丙", "甲乙丙") == 1.0
    assert char_f1("", "甲") == 0.0
    assert char_f1("甲乙", "甲乙丙丁") == pytest.approx(2 / 3)
    assert char_f1("甲 乙\n", "甲乙") == 1.0  # whitespace does not count
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
            assert gold["title"] and gold["text"]
            assert normal_date(gold["date"]) == gold["date"]


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
