"""Chinese phone numbers: accept what people type, keep E.164.

Mobile numbers (``13800138000``, ``+86 138-0013-8000``) and landlines with their area
code (``0532-88886666``, ``(0532)88886666``, ``053288886666-123``) are accepted; the
result is E.164 (``+8613800138000``, ``+8653288886666``). Validation uses the
``phonenumbers`` metadata, so an area code that does not exist is refused.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberType

_ACCEPTED_TYPES = {
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


_LANDLINE_TYPES = {PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
# A trailing extension: "-123", " 转 123", "分机123", "ext. 123", "x123".
_EXTENSION = re.compile(r"^(.*\d)\s*(?:-|转|分机|ext\.?|x)\s*\d{1,6}$", re.IGNORECASE)


class InvalidPhone(ValueError):
    """Not a valid Chinese mobile or landline number."""


def to_e164(text: str, region: str = "CN") -> str:
    """Normalize a mainland mobile or landline number to E.164, or raise ``InvalidPhone``.

    A landline's extension (``0532-88886666-123``, ``…转123``, ``… ext 123``) is accepted
    and dropped: E.164 has no extension.
    """
    candidate = text.strip()
    if not candidate or len(candidate) > 32:
        raise InvalidPhone(text)
    candidate = candidate.replace("（", "(").replace("）", ")").replace("－", "-")
    if candidate.startswith("0086"):
        candidate = "+86" + candidate[4:]
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
