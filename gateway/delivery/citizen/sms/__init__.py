"""Sending one SMS through a configurable HTTP provider (docs/citizen.md#sms).

The contract every provider keeps (``contract.py``): ``send`` delivers one message or
raises ``SmsError`` saying whether trying again may help. The providers, one module
each: a generic JSON webhook (``generic.py``) and the request shapes of the two big
Chinese SMS clouds (``aliyun.py``, ``tencent.py``), chosen by ``sms_provider`` from the
``sms:`` config block. The citizen sink (gateway/delivery/citizen/) renders the template
and calls ``send``.
"""

from __future__ import annotations

from gateway.delivery.citizen.sms.contract import SmsError, SmsMessage, SmsProvider
from gateway.delivery.citizen.sms.factory import sms_provider

__all__ = ["SmsError", "SmsMessage", "SmsProvider", "sms_provider"]
