"""Shared text clean-up: NFC, blanks of every width, line breaks, invisible characters."""

from __future__ import annotations

import unicodedata

import pytest

from normalizers.common.text import clean_line, clean_text

# Shaped like the scraped message-board posts in the sample data: tab indentation,
# full-width indent (\u3000\u3000), NBSP between numbers and units, blank lines around.
SCRAPED = (
    "\n\t\t\t\t\t\n\t\t\t\t\t\u3000\u3000小区东门外的排水沟堵塞，下雨后积水约\xa030\xa0厘米。"
    "\n\t\t\t\t\t\n\t\t\t\t\t\u3000\u3000请尽快疏通。\n\t\t\t\t\t\n\t\t\t\t\t\n\t\t\t\t"
)


def test_scraped_message_keeps_its_paragraphs_and_loses_the_layout() -> None:
    assert clean_text(SCRAPED) == "小区东门外的排水沟堵塞，下雨后积水约 30 厘米。\n\n请尽快疏通。"


def test_nfc() -> None:
    assert clean_text("Cafe\u0301") == "Café"
    assert clean_text("\uf9d0") == "\u985e"  # a CJK compatibility ideograph becomes unified
    decomposed = unicodedata.normalize("NFD", "한국어")
    assert clean_text(decomposed) == "한국어"


@pytest.mark.parametrize("blank", [" ", "\t", "\xa0", "\u3000", "\u2002", "\u2003", "\u2009",
                                   "\u200a", "\u202f", "\u205f", "\u1680", "\u2000", " \t\u3000"])
def test_every_kind_of_blank_folds_to_one_space(blank: str) -> None:
    assert clean_text(f"正阳路{blank}{blank}长城路") == "正阳路 长城路"
    assert clean_line(f"{blank}正阳路{blank}") == "正阳路"


@pytest.mark.parametrize("invisible", ["\u200b", "\ufeff", "\u2060", "\u00ad", "\x00", "\x08",
                                       "\x1b", "\x7f", "\x9f"])
def test_invisible_and_control_characters_are_removed(invisible: str) -> None:
    assert clean_text(f"{invisible}路灯{invisible}不亮{invisible}") == "路灯不亮"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x85", "\u2028",
                                     "\u2029"])
def test_every_line_break_becomes_a_newline(newline: str) -> None:
    assert clean_text(f"第一行{newline}第二行") == "第一行\n第二行"
    assert clean_line(f"第一行{newline}第二行") == "第一行 第二行"


def test_runs_of_blank_lines_fold_to_one_blank_line() -> None:
    assert clean_text("甲\n\n\n\n\n乙\r\n\r\n\r\n丙") == "甲\n\n乙\n\n丙"
    assert clean_text("甲\n \u3000\n\t\n乙") == "甲\n\n乙"


def test_chinese_text_and_punctuation_are_untouched() -> None:
    text = "《12345热线》反映：“共享单车乱停放”！（城阳区·正阳路）——请处理？"
    assert clean_text(text) == text
    assert clean_line(text) == text


def test_emoji_sequences_with_joiners_are_kept() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean_text(f"谢谢{family}") == f"谢谢{family}"


def test_empty_and_blank_become_empty() -> None:
    assert clean_text("") == ""
    assert clean_text(" \u3000\xa0\n\t\r\n\u200b") == ""
    assert clean_line("\n\n") == ""
