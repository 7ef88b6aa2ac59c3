"""The provider the ``sms:`` config block names."""

from __future__ import annotations

from typing import assert_never

import aiohttp

from gateway.delivery.citizen.sms.aliyun import AliyunSmsProvider
from gateway.delivery.citizen.sms.contract import SmsProvider
from gateway.delivery.citizen.sms.generic import GenericSmsProvider
from gateway.delivery.citizen.sms.tencent import TencentSmsProvider
from gateway.support.sms_config import (
    AliyunSmsConfig,
    GenericSmsConfig,
    SmsConfig,
    TencentSmsConfig,
)


def sms_provider(config: SmsConfig, session: aiohttp.ClientSession) -> SmsProvider:
    """The configured provider, sending through ``session`` (the caller owns and closes
    it; one session for every message keeps connections to the provider alive)."""
    if isinstance(config, GenericSmsConfig):
        return GenericSmsProvider(config, session)
    if isinstance(config, AliyunSmsConfig):
        return AliyunSmsProvider(config, session)
    if isinstance(config, TencentSmsConfig):
        return TencentSmsProvider(config, session)
    assert_never(config)
