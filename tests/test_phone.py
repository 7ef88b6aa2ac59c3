"""Chinese phone numbers as people type them, normalized to E.164."""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable

import phonenumbers
import pytest

from normalizers.common.phone import (
    InvalidPhone,
    _fast_mobile,
    _to_e164_slow,
    caller_to_e164,
    to_e164,
)

MOBILE = "+8613800138000"
QINGDAO = "+8653288886666"
BEIJING = "+861012345678"


@pytest.mark.parametrize(("typed", "e164"), [
    ("13800138000", MOBILE),
    (" 13800138000 ", MOBILE),
    ("138 0013 8000", MOBILE),
    ("138-0013-8000", MOBILE),
    ("+8613800138000", MOBILE),
    ("+86 138-0013-8000", MOBILE),
    ("+86 (138) 0013 8000", MOBILE),
    ("0086 13800138000", MOBILE),
    ("008613800138000", MOBILE),
    ("86-13800138000", MOBILE),
    ("１３８００１３８０００", MOBILE),          # full-width digits
    ("19912345678", "+8619912345678"),
    ("0532-88886666", QINGDAO),
    ("053288886666", QINGDAO),
    ("0532 8888 6666", QINGDAO),
    ("(0532)88886666", QINGDAO),
    ("(0532) 8888-6666", QINGDAO),
    ("（0532）88886666", QINGDAO),             # full-width brackets
    ("0532－88886666", QINGDAO),               # full-width hyphen
    ("+86 532 8888 6666", QINGDAO),
    ("0086 532 88886666", QINGDAO),
    ("010-12345678", BEIJING),
    ("010-1234-5678", BEIJING),
    ("(010)12345678", BEIJING),
    ("+86-10-12345678", BEIJING),
])
def test_accepted_numbers_become_e164(typed: str, e164: str) -> None:
    assert to_e164(typed) == e164


@pytest.mark.parametrize("typed", [
    "053288886666-123", "0532-88886666-8001", "0532-88886666转123", "0532-88886666 转 123",
    "0532-88886666分机123", "0532-88886666 ext. 123", "0532-88886666 x123",
])
def test_a_landline_extension_is_accepted_and_dropped(typed: str) -> None:
    assert to_e164(typed) == QINGDAO


@pytest.mark.parametrize("typed", [
    "12345",            # the hotline itself, a short number
    "12315",
    "110",
    "95588",            # a bank's service number
    "88886666",         # a landline without its area code
    "0999-88886666",    # no such area code
    "0000-88886666",
    "1380013800",       # a digit short
    "138001380001",     # a digit too many
    "10012345678",      # no mobile prefix 100
    "13800138000-12",   # an "extension" on a mobile
    "400-123-4567",     # a service number, neither mobile nor landline
    "+1 650 253 0000",  # not Chinese
    "+852 2123 4567",   # Hong Kong: another country code
    "+8613800138000000",
    "call me",
    "",
    "   ",
    "1" * 33,
    "+86 138 0013 8000 ext 1234567890 (office)",
])
def test_refused_numbers(typed: str) -> None:
    with pytest.raises(InvalidPhone):
        to_e164(typed)


def test_invalid_phone_is_a_value_error_carrying_the_text() -> None:
    with pytest.raises(ValueError) as info:
        to_e164("12345")
    assert isinstance(info.value, InvalidPhone)
    assert info.value.args == ("12345",)


@pytest.mark.parametrize(("caller", "expected"), [
    ("13800138000", MOBILE),
    ("+86 0532 8888 6666", QINGDAO),
    ("1001", "1001"),                # a PBX extension stays as the phone system gave it
    (" anonymous ", "anonymous"),
    ("", None),
    (None, None),
    ("   ", None),
])
def test_caller_ids_are_best_effort(caller: str | None, expected: str | None) -> None:
    assert caller_to_e164(caller) == expected


# The fast path for plain mobiles (normalizers/common/phone.py) must answer exactly as the
# phonenumbers path does: same E.164, or the same exception with the same args.

def _outcome(convert: Callable[[str, str], str], text: str, region: str) -> object:
    try:
        return ("ok", convert(text, region))
    except Exception as exc:
        return ("raised", type(exc), exc.args)


def _divergences(texts: Iterable[str], region: str = "CN") -> list[str]:
    found = []
    for text in texts:
        fast, slow = _outcome(to_e164, text, region), _outcome(_to_e164_slow, text, region)
        if fast != slow:
            found.append(f"{text!r} ({region}): fast {fast}, phonenumbers {slow}")
    return found


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def _every_prefix_numbers(rng: random.Random) -> list[str]:
    """Every 3-digit (100..199) and 4-digit (1000..1999) prefix, random suffixes."""
    numbers = [f"1{p:02d}" + _digits(rng, 8) for p in range(100) for _ in range(20)]
    numbers += [f"1{p:03d}" + _digits(rng, 7) for p in range(1000) for _ in range(6)]
    return numbers


_FULL_WIDTH = str.maketrans(string.digits, "０１２３４５６７８９")
_ARABIC_INDIC = str.maketrans(string.digits, "٠١٢٣٤٥٦٧٨٩")
_FORMS: list[Callable[[str], str]] = [
    lambda n: n,
    lambda n: f" {n} ",
    lambda n: f"+86{n}",
    lambda n: f"86{n}",
    lambda n: f"0086{n}",
    lambda n: f"0086 {n}",
    lambda n: f"86-{n}",
    lambda n: f"+86 {n[:3]}-{n[3:7]}-{n[7:]}",
    lambda n: f"+86 {n[:3]} {n[3:7]} {n[7:]}",
    lambda n: f"{n[:3]} {n[3:7]} {n[7:]}",
    lambda n: f"{n[:3]}-{n[3:7]}-{n[7:]}",
    lambda n: f"+86－{n[:3]}－{n[3:7]}－{n[7:]}",   # full-width hyphens
    lambda n: f"（+86）{n}",                          # full-width brackets
    lambda n: f"(+86) {n[:3]} {n[3:7]} {n[7:]}",
    lambda n: f"+86 ({n[:3]}) {n[3:7]} {n[7:]}",
    lambda n: f"+ 86 {n}",
    lambda n: f"8 6{n}",
    lambda n: f"-{n}-",
    lambda n: f"{n[:-1]}-{n[-1]}",                 # looks like a landline with an extension
    lambda n: f"{n[:-2]}-{n[-2:]}",
    lambda n: f"{n}-12",
    lambda n: f"{n} x12",
    lambda n: f"{n}{n[-1]}",                       # a digit too many
    lambda n: n[:-1],                              # a digit short
    lambda n: f"0{n}",
    lambda n: f"+860{n}",
    lambda n: f"+8686{n}",
    lambda n: f"00 86 {n}",
    lambda n: f"00{n}",
    lambda n: f"+{n}",
    lambda n: f"+852{n}",
    lambda n: n.translate(_FULL_WIDTH),
    lambda n: n[:4] + n[4:].translate(_FULL_WIDTH),
    lambda n: n[:4] + n[4:].translate(_ARABIC_INDIC),
    lambda n: f"{n[:3]}x{n[3:]}",
    lambda n: f"{n[:3]}.{n[3:7]}.{n[7:]}",
]


def _scattered(rng: random.Random, text: str) -> str:
    """``text`` with spaces and hyphens inserted at random places."""
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        chars.insert(rng.randint(0, len(chars)), rng.choice([" ", "-", "--", " - "]))
    return "".join(chars)


def test_fast_path_agrees_with_phonenumbers_on_every_mobile_prefix() -> None:
    numbers = _every_prefix_numbers(random.Random(12345))
    assert _divergences(numbers)[:10] == []
    accepted = [n for n in numbers if _outcome(_to_e164_slow, n, "CN")[0] == "ok"]
    decided = [n for n in accepted if _fast_mobile(n) is not None]
    # The fast path is really taken (so the comparison above tested it).
    assert len(accepted) > 1000
    assert len(decided) >= 0.95 * len(accepted)


def test_fast_path_agrees_with_phonenumbers_on_random_numbers() -> None:
    rng = random.Random(20240611)
    numbers = ["1" + _digits(rng, 10) for _ in range(50_000)]
    assert _divergences(numbers)[:10] == []
    assert sum(_fast_mobile(n) is not None for n in numbers) > 10_000


def test_fast_path_agrees_with_phonenumbers_on_decorated_numbers() -> None:
    rng = random.Random(7)
    numbers = rng.sample(_every_prefix_numbers(rng), 600) + [
        "1" + _digits(rng, 10) for _ in range(200)
    ]
    texts = [form(n) for n in numbers for form in _FORMS]
    texts += [_scattered(rng, prefix + n) for n in numbers for prefix in ("", "+86", "86")]
    assert _divergences(texts)[:10] == []
    for region in ("US", "HK", "cn"):
        assert _divergences(texts[::7], region)[:10] == []


@pytest.mark.parametrize(("typed", "e164"), [
    ("17400123456", "+8617400123456"),   # 1740[0-5]: satellite mobile
    ("16101234567", "+8616101234567"),
    ("1012345678-9", BEIJING),            # the mobile shape, but a landline with extension
    ("11234008613800138000", MOBILE),    # 11234 + 00: a carrier's international prefix
])
def test_numbers_near_the_fast_path(typed: str, e164: str) -> None:
    assert to_e164(typed) == e164 == _to_e164_slow(typed)


def test_the_fast_path_answers_plain_mobiles() -> None:
    assert _fast_mobile("+8613800138000") == MOBILE
    assert _fast_mobile("+86 138-0013-8000") == MOBILE
    assert _fast_mobile("17912345678") is None   # 179xx is a carrier code, not a mobile range
    assert _fast_mobile("1012345678-9") is None


def test_plain_mobiles_do_not_reach_phonenumbers(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("phonenumbers.parse called")

    monkeypatch.setattr(phonenumbers, "parse", refuse)
    for typed in ("13800138000", "+8613800138000", "+86 138-0013-8000", "0086 13800138000",
                  "138 0013 8000", "86-13800138000"):
        assert to_e164(typed) == MOBILE
