"""Chinese phone numbers: accept what people type, keep E.164.

Mobile numbers (``13800138000``, ``+86 138-0013-8000``) and landlines with their area
code (``0532-88886666``, ``(0532)88886666``, ``053288886666-123``) are accepted; the
result is E.164 (``+8613800138000``, ``+8653288886666``). Validation uses the
``phonenumbers`` metadata, so an area code that does not exist is refused.

Fast path: ``phonenumbers.parse`` + ``is_valid_number`` + ``number_type`` cost tens of
µs, paid on every intake, and nearly every number typed is a plain mainland mobile.
A candidate that is, once spaces and hyphens are removed, ``1`` and ten ASCII digits,
optionally after ``+86`` or ``86`` (``0086`` is already ``+86`` by then), is typed
directly against phonenumbers' own CN metadata: the same possible lengths and the same
regular expressions, checked in the same order as ``phonenumbers``' type helper. For
that shape ``parse`` keeps all eleven digits as the national number (no mobile range
starts with CN's carrier-code or international prefixes, ``1[12]xx``/``179xx``), so
the answer is the same. Only a MOBILE verdict is answered there; everything else
(invalid, fixed line, another region, any other shape) takes the unchanged slow path,
so refusals and their exceptions stay exactly as they were. tests/test_phone.py
compares both paths over every mobile prefix and random numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc, PhoneNumberType

_ACCEPTED_TYPES = {
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


_LANDLINE_TYPES = {PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
# A trailing extension: "-123", " 转 123", "分机123", "ext. 123", "x123".
_EXTENSION = re.compile(r"^(.*\d)\s*(?:-|转|分机|ext\.?|x)\s*\d{1,6}$", re.IGNORECASE)
# The fast path's shape, after removing spaces and hyphens. [0-9], not \d: other digits
# (full-width, Arabic-Indic) are phonenumbers' business, on the slow path.
_MOBILE_SHAPE = re.compile(r"(?:\+?86)?(1[0-9]{10})")


class InvalidPhone(ValueError):
    """Not a valid Chinese mobile or landline number."""


def _desc_matcher(desc: PhoneNumberDesc | None) -> Callable[[str], bool]:
    """phonenumbers' ``_is_number_matching_desc`` for one description, compiled once."""
    if desc is None or not desc.national_number_pattern:
        return lambda national: False
    lengths = frozenset(desc.possible_length)
    pattern = re.compile(desc.national_number_pattern)
    return lambda national: (
        (not lengths or len(national) in lengths) and pattern.fullmatch(national) is not None
    )


def _cn_metadata() -> PhoneMetadata:
    metadata = PhoneMetadata.metadata_for_region("CN")
    if metadata is None:  # pragma: no cover - phonenumbers always ships CN
        raise RuntimeError("phonenumbers has no metadata for CN")
    return metadata


_CN = _cn_metadata()
_CN_GENERAL = _desc_matcher(_CN.general_desc)
# Every type phonenumbers tests before MOBILE, fixed line last (absent ones never match).
_CN_NOT_MOBILE = [
    _desc_matcher(desc)
    for desc in (
        _CN.premium_rate, _CN.toll_free, _CN.shared_cost, _CN.voip, _CN.personal_number,
        _CN.pager, _CN.uan, _CN.voicemail, _CN.fixed_line,
    )
    if desc is not None
]
_CN_MOBILE = _desc_matcher(_CN.mobile)


def to_e164(text: str, region: str = "CN") -> str:
    """Normalize a mainland mobile or landline number to E.164, or raise ``InvalidPhone``.

    A landline's extension (``0532-88886666-123``, ``…转123``, ``… ext 123``) is accepted
    and dropped: E.164 has no extension.
    """
    candidate = _prepare(text)
    if region == "CN":
        mobile = _fast_mobile(candidate)
        if mobile is not None:
            return mobile
    return _slow_e164(text, candidate, region)


def _to_e164_slow(text: str, region: str = "CN") -> str:
    """``to_e164`` without the fast path: the reference the tests compare it with."""
    return _slow_e164(text, _prepare(text), region)


def _prepare(text: str) -> str:
    """The stripped candidate with full-width punctuation and ``0086`` mapped."""
    candidate = text.strip()
    if not candidate or len(candidate) > 32:
        raise InvalidPhone(text)
    candidate = candidate.replace("（", "(").replace("）", ")").replace("－", "-")
    if candidate.startswith("0086"):
        candidate = "+86" + candidate[4:]
    return candidate


def _fast_mobile(candidate: str) -> str | None:
    """E.164 of a plain CN mobile that phonenumbers types MOBILE, else None (undecided)."""
    shape = _MOBILE_SHAPE.fullmatch(candidate.replace(" ", "").replace("-", ""))
    if shape is None:
        return None
    national = shape.group(1)
    if (
        not _CN_GENERAL(national)
        or any(matches(national) for matches in _CN_NOT_MOBILE)
        or _CN.same_mobile_and_fixed_line_pattern
        or not _CN_MOBILE(national)
    ):
        return None
    return "+86" + national


def _slow_e164(text: str, candidate: str, region: str) -> str:
    """The full phonenumbers path, extensions included."""
    number = _parse_valid(candidate, region, _ACCEPTED_TYPES)
    if number is None:
        ext = _EXTENSION.match(candidate)
        number = _parse_valid(ext.group(1), region, _LANDLINE_TYPES) if ext else None
    if number is None:
        raise InvalidPhone(text)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_valid(
    candidate: str, region: str, types: set[int]
) -> phonenumbers.PhoneNumber | None:
    """The parsed number if it is a valid Chinese number of one of ``types``, else None."""
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if number.country_code != 86 or not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in types:
        return None
    return number


def caller_to_e164(text: str | None, region: str = "CN") -> str | None:
    """Best effort for caller ids from phone systems: E.164 when valid, else as given."""
    if not text:
        return None
    try:
        return to_e164(text, region)
    except InvalidPhone:
        return text.strip() or None
