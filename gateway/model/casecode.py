"""Case codes a citizen can read over the phone: ``CY-20191120-W-000123-7``.

Layout: region prefix (letters from config), local date, one channel letter, the daily
sequence (at least six digits) and an ISO 7064 MOD 11-2 check character (0-9 or X).

The check character is computed over the digits of the date, the channel's digit and
the sequence. MOD 11-2 detects every single wrong digit and every swap of neighbouring
digits. The channel letter enters through its digit, so a wrong channel letter is caught
too; a letter in place of a digit (or the reverse) fails the layout. The region prefix is
letters only and is checked against the configured region when one is known: a modulus
of 11 cannot protect 26 letters, and the format asks for MOD 11-2.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from gateway.model.schema import Channel

CHANNEL_LETTERS: dict[Channel, str] = {"phone": "P", "web": "W", "email": "E", "opinion": "Y"}
_LETTER_CHANNELS = {v: k for k, v in CHANNEL_LETTERS.items()}
_CHANNEL_DIGITS = {"P": "1", "W": "2", "E": "3", "Y": "4"}

# ASCII digits only: ``\d`` would also take Arabic-Indic and other Unicode digits.
_CODE = re.compile(r"^([A-Z]{1,8})-([0-9]{8})-([A-Z])-([0-9]{6,})-([0-9X])$")
# Dashes people (and word processors) type in place of the hyphen.
_DASHES = re.compile(r"[\u2010-\u2015\u2212\ufe58\ufe63]")


def mod11_2(digits: str) -> str:
    """ISO 7064 MOD 11-2 check character of a string of decimal digits."""
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"MOD 11-2 needs ASCII decimal digits, not {digits!r}")
    p = 0
    for ch in digits.encode():
        p = ((p + ch - 48) * 2) % 11  # 48: the code of "0"
    value = (12 - p) % 11
    return "X" if value == 10 else str(value)


def _checked_digits(day: str, letter: str, sequence: str) -> str:
    return day + _CHANNEL_DIGITS[letter] + sequence


def format_code(region: str, day: date, channel: Channel, sequence: int) -> str:
    letter = CHANNEL_LETTERS[channel]
    day_s = f"{day.year:04d}{day.month:02d}{day.day:02d}"
    seq_s = f"{sequence:06d}"
    check = mod11_2(_checked_digits(day_s, letter, seq_s))
    return f"{region}-{day_s}-{letter}-{seq_s}-{check}"


@dataclass(frozen=True)
class ParsedCode:
    region: str
    day: date
    channel: Channel
    sequence: int


class InvalidCaseCode(ValueError):
    """The code is not a valid case code; the message says why, in Chinese and English."""


def parse_code(code: str, expected_region: str | None = None) -> ParsedCode:
    """Parse and verify ``code``; raise ``InvalidCaseCode`` saying what is wrong."""
    text = _DASHES.sub("-", unicodedata.normalize("NFKC", code)).strip().upper()
    m = _CODE.match(text)
    if not m:
        raise InvalidCaseCode(
            "格式不符，应为 地区-日期-渠道-序号-校验位 "
            "(layout must be REGION-YYYYMMDD-CHANNEL-SEQUENCE-CHECK, e.g. CY-20191120-W-000123-7)"
        )
    region, day_s, letter, seq_s, check = m.groups()
    if letter not in _LETTER_CHANNELS:
        raise InvalidCaseCode(
            f"渠道字母 {letter} 无效，应为 P/W/E/Y "
            f"(channel letter {letter} is not one of P, W, E, Y)"
        )
    try:
        day = date(int(day_s[:4]), int(day_s[4:6]), int(day_s[6:]))
    except ValueError:
        raise InvalidCaseCode(f"日期 {day_s} 不存在 (date {day_s} does not exist)") from None
    expected = mod11_2(_checked_digits(day_s, letter, seq_s))
    if check != expected:
        raise InvalidCaseCode(
            "校验位不符，编码有误抄或顺序颠倒 "
            "(check character does not match: a character was mistyped or two were swapped)"
        )
    if expected_region is not None and region != expected_region:
        raise InvalidCaseCode(
            f"地区代码 {region} 不是本中心的 {expected_region} "
            f"(region {region} is not this centre's {expected_region})"
        )
    return ParsedCode(region, day, _LETTER_CHANNELS[letter], int(seq_s))
