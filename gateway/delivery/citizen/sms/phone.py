"""Phone numbers as each provider wants them, from the E.164 the gateway keeps.

The gateway stores numbers in E.164 (``+8613800138000``, normalizers/common/phone.py).
The generic webhook and Tencent Cloud take E.164 as it is (Tencent: ``+[country code]
[number]``); Alibaba Cloud's ``SendSms`` takes a mainland number as its bare 11 digits
and any other as country code and number without ``+`` or ``00`` (``85212345678``).
"""

from __future__ import annotations

import re

from gateway.delivery.citizen.sms.contract import SmsError

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def e164(phone: str) -> str:
    """``phone`` if it is E.164; else a non-retryable ``SmsError`` (without the number:
    the message reaches the logs)."""
    if not _E164.fullmatch(phone):
        raise SmsError("the phone number is not in E.164 form (+, country code, number)",
                       retryable=False)
    return phone


def aliyun_number(phone: str) -> str:
    """``+8613800138000`` → ``13800138000``; ``+85212345678`` → ``85212345678``."""
    digits = e164(phone)[1:]
    return digits[2:] if digits.startswith("86") else digits
