"""Chinese phone numbers: accept what people type, keep E.164.

Mobile numbers (``13800138000``, ``+86 138-0013-8000``) and landlines with their area
code (``0532-88886666``, ``(0532)88886666``, ``053288886666-123``) are accepted; the
result is E.164 (``+8613800138000``, ``+8653288886666``). Validation uses the
``phonenumbers`` metadata, so an area code that does not exist is refused.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberType

_ACCEPTED_TYPES = {
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


class InvalidPhone(ValueError):
    """Not a valid Chinese mobile or landline number."""


def to_e164(text: str, region: str = "CN") -> str:
    """Normalize a mainland mobile or landline number to E.164, or raise ``InvalidPhone``."""
    candidate = text.strip()
    if not candidate or len(candidate) > 32:
        raise InvalidPhone(text)
    candidate = candidate.replace("（", "(").replace("）", ")").replace("－", "-")
    if candidate.startswith("0086"):
        candidate = "+86" + candidate[4:]
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(text) from None
    if number.country_code != 86 or not phonenumbers.is_valid_number(number):
        raise InvalidPhone(text)
    if phonenumbers.number_type(number) not in _ACCEPTED_TYPES:
        raise InvalidPhone(text)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def caller_to_e164(text: str | None, region: str = "CN") -> str | None:
    """Best effort for caller ids from phone systems: E.164 when valid, else as given."""
    if not text:
        return None
    try:
        return to_e164(text, region)
    except InvalidPhone:
        return text.strip() or None
