"""Case codes: layout, ISO 7064 MOD 11-2, and every typo a citizen can make reading one out."""

from __future__ import annotations

import random
import re
from datetime import date

import pytest

from gateway.model.casecode import (
    CHANNEL_LETTERS,
    InvalidCaseCode,
    ParsedCode,
    format_code,
    mod11_2,
    parse_code,
)
from gateway.model.schema import CHANNELS, Channel

CJK = re.compile(r"[\u4e00-\u9fff]")


def _sample_codes() -> list[str]:
    """Codes over every channel, many dates and sequences, including check characters X."""
    rng = random.Random(20191120)
    codes = [format_code("CY", date(2019, 11, 20), "web", 123)]
    for _ in range(40):
        day = date(rng.randint(2000, 2099), rng.randint(1, 12), rng.randint(1, 28))
        channel: Channel = rng.choice(CHANNELS)
        codes.append(format_code("CY", day, channel, rng.randint(0, 9_999_999)))
    seq = 0
    while sum(c.endswith("X") for c in codes) < 3:
        code = format_code("QD", date(2020, 2, 29), "phone", seq)
        if code.endswith("X"):
            codes.append(code)
        seq += 1
    return codes


CODES = _sample_codes()


def _is_bilingual(message: str) -> bool:
    return bool(CJK.search(message)) and bool(re.search(r"\([A-Za-z][^)]*[a-z]{3}", message))


# --- MOD 11-2 against published values ---------------------------------------------------

@pytest.mark.parametrize(("digits", "check"), [
    ("11010519491231002", "X"),  # GB 11643 resident ID card 11010519491231002X
    ("44052418800101001", "4"),  # GB 11643 example 440524188001010014
    ("000000021825009", "7"),    # ORCID 0000-0002-1825-0097
    ("000000015109370", "0"),    # ORCID 0000-0001-5109-3700
    ("000000021694233", "X"),    # ORCID 0000-0002-1694-233X
])
def test_mod11_2_matches_published_check_characters(digits: str, check: str) -> None:
    assert mod11_2(digits) == check


@pytest.mark.parametrize("bad", ["", "12a4", "１２３", "١٢٣", "12 34"])
def test_mod11_2_refuses_anything_but_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        mod11_2(bad)


# --- layout and round trip ---------------------------------------------------------------

def test_documented_example() -> None:
    assert format_code("CY", date(2019, 11, 20), "web", 123) == "CY-20191120-W-000123-7"
    assert parse_code("CY-20191120-W-000123-7") == ParsedCode("CY", date(2019, 11, 20), "web", 123)


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("sequence", [0, 1, 999_999, 1_000_000, 123_456_789])
def test_round_trip(channel: Channel, sequence: int) -> None:
    day = date(2024, 2, 29)
    code = format_code("QDCY", day, channel, sequence)
    assert code.startswith(f"QDCY-20240229-{CHANNEL_LETTERS[channel]}-")
    assert len(code.split("-")[3]) == max(6, len(str(sequence)))
    assert parse_code(code, "QDCY") == ParsedCode("QDCY", day, channel, sequence)


def test_every_sample_code_round_trips() -> None:
    for code in CODES:
        parsed = parse_code(code)
        assert format_code(parsed.region, parsed.day, parsed.channel, parsed.sequence) == code


@pytest.mark.parametrize("typed", [
    "cy-20191120-w-000123-7",
    "  CY-20191120-W-000123-7\n",
    "ＣＹ－２０１９１１２０－Ｗ－０００１２３－７",  # typed with a full-width input method
    "CY–20191120—W−000123‐7",  # dashes from a word processor
])
def test_what_people_type_is_read_as_the_code(typed: str) -> None:
    assert parse_code(typed, "CY").sequence == 123


# --- every single-character typo and every swap of neighbours ---------------------------

def test_every_single_character_substitution_in_the_digits_is_detected() -> None:
    checked = 0
    for code in CODES:
        for i, ch in enumerate(code):
            if not (ch.isdigit() or (ch == "X" and i == len(code) - 1)):
                continue
            for other in "0123456789X":
                if other == ch:
                    continue
                typo = code[:i] + other + code[i + 1:]
                with pytest.raises(InvalidCaseCode):
                    parse_code(typo)
                checked += 1
    assert checked > 5000


def test_a_substituted_sequence_digit_is_reported_as_a_check_mismatch() -> None:
    code = "CY-20191120-W-000123-7"
    for i in range(14, 20):
        for other in "0123456789":
            if other != code[i]:
                with pytest.raises(InvalidCaseCode, match="校验位不符"):
                    parse_code(code[:i] + other + code[i + 1:])


def test_every_swap_of_neighbouring_characters_is_detected() -> None:
    checked = 0
    for code in CODES:
        region = code.split("-")[0]
        for i in range(len(code) - 1):
            if code[i] == code[i + 1]:
                continue
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2:]
            with pytest.raises(InvalidCaseCode):
                parse_code(swapped, region)
            checked += 1
    assert checked > 500


def test_swapped_digits_are_caught_by_the_check_alone() -> None:
    """Without the region to compare, a swap inside the digits is still caught."""
    for code in CODES:
        for i in range(len(code) - 1):
            a, b = code[i], code[i + 1]
            if a != b and a.isdigit() and b.isdigit():
                with pytest.raises(InvalidCaseCode):
                    parse_code(code[:i] + b + a + code[i + 2:])


@pytest.mark.parametrize("letter", [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c != "W"])
def test_a_wrong_channel_letter_is_detected(letter: str) -> None:
    with pytest.raises(InvalidCaseCode) as info:
        parse_code(f"CY-20191120-{letter}-000123-7")
    assert _is_bilingual(str(info.value))


def test_unknown_channel_letter_says_which_letters_exist() -> None:
    with pytest.raises(InvalidCaseCode, match="P/W/E/Y") as info:
        parse_code("CY-20191120-Q-000123-7")
    assert "channel letter Q" in str(info.value)


def test_wrong_region_is_detected_when_the_region_is_known() -> None:
    code = "CY-20191120-W-000123-7"
    assert parse_code(code).region == "CY"  # not checkable without the expected region
    with pytest.raises(InvalidCaseCode) as info:
        parse_code(code, "QD")
    message = str(info.value)
    assert "CY" in message and "QD" in message and _is_bilingual(message)
    with pytest.raises(InvalidCaseCode):
        parse_code("YC-20191120-W-000123-7", "CY")


# --- dates and layout -------------------------------------------------------------------

@pytest.mark.parametrize("day", ["20190230", "20191301", "20190000", "00000101", "20191132",
                                 "20230229"])
def test_impossible_dates_are_refused(day: str) -> None:
    check = mod11_2(day + "2" + "000123")
    with pytest.raises(InvalidCaseCode, match=f"日期 {day} 不存在") as info:
        parse_code(f"CY-{day}-W-000123-{check}")
    assert f"date {day} does not exist" in str(info.value)


def test_leap_day_is_a_real_date() -> None:
    code = format_code("CY", date(2020, 2, 29), "email", 7)
    assert parse_code(code).day == date(2020, 2, 29)


@pytest.mark.parametrize("bad", [
    "", "CY20191120W0001237", "CY-2019112-W-000123-7", "CY-20191120-W-00123-7",
    "CY-20191120-W-000123-77", "CY-20191120-WW-000123-7", "CY-20191120-W-000123-A",
    "CY1-20191120-W-000123-7", "ABCDEFGHI-20191120-W-000123-7", "CY-2019112O-W-000123-7",
    "CY-20191120-W-00O123-7", "CY-٢٠١٩١١٢٠-W-000123-7",
])
def test_broken_layout_is_refused_with_the_expected_shape(bad: str) -> None:
    with pytest.raises(InvalidCaseCode, match="REGION-YYYYMMDD-CHANNEL-SEQUENCE-CHECK") as info:
        parse_code(bad)
    assert _is_bilingual(str(info.value))


def test_every_message_is_chinese_with_english() -> None:
    cases = ["nonsense", "CY-20191120-Q-000123-7", "CY-20190230-W-000123-7",
             "CY-20191120-W-000124-7"]
    for bad in cases:
        with pytest.raises(InvalidCaseCode) as info:
            parse_code(bad)
        assert _is_bilingual(str(info.value)), str(info.value)
    with pytest.raises(InvalidCaseCode) as info:
        parse_code("CY-20191120-W-000123-7", "QD")
    assert _is_bilingual(str(info.value))
