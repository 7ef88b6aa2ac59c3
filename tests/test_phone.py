"""Chinese phone numbers as people type them, normalized to E.164."""

from __future__ import annotations

import pytest

from normalizers.phone import InvalidPhone, caller_to_e164, to_e164

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
