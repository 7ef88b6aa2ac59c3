"""The ``citizen_sms`` sink: the case code by SMS to the caller or web writer.

It renders the template and hands one ``SmsMessage`` (the text, and the values by name
for clouds that fill registered templates) to the configured ``SmsProvider``
(gateway/delivery/citizen/sms/). Only mobile numbers are texted (``mobile_pattern``,
mainland mobiles by default): a landline caller gets no SMS, counted as ``not_mobile``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import aiohttp
from pydantic import Field, field_validator

from gateway.delivery.citizen.case_facts import CaseFacts
from gateway.delivery.citizen.notice_sink import CitizenSink, NoticeOptions, Skip
from gateway.delivery.citizen.sms import SmsError, SmsMessage, SmsProvider, sms_provider
from gateway.delivery.citizen.templates import DEFAULT_SMS, MessageTemplate, NoticeValues
from gateway.model.errors import ConfigError, PermanentSinkError, RetriableSinkError
from gateway.support.config import GatewayConfig
from gateway.support.keyed_ids import IdKind

SmsChannel = Literal["phone", "web"]
SMS_CHANNELS: tuple[SmsChannel, ...] = ("phone", "web")
MAINLAND_MOBILE = r"^\+861[3-9]\d{9}$"


class CitizenSmsOptions(NoticeOptions):
    """``kind: citizen_sms`` (docs/configuration.md#sinks)."""

    template: MessageTemplate = Field(default_factory=lambda: DEFAULT_SMS.model_copy())
    channels: list[SmsChannel] = Field(default_factory=lambda: list(SMS_CHANNELS), min_length=1)
    mobile_pattern: str = Field(default=MAINLAND_MOBILE, description="E.164 numbers texted")

    @field_validator("mobile_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


def provider_for(config: GatewayConfig,
                 session: aiohttp.ClientSession) -> SmsProvider | None:
    """The SMS provider the ``sms:`` block names, sending through ``session`` (the
    caller owns and closes it); None when the config has no ``sms:`` block."""
    return None if config.sms is None else sms_provider(config.sms, session)


class CitizenSmsSink(CitizenSink[CitizenSmsOptions]):
    notice_channel = "sms"
    id_kind = IdKind.PHONE

    def __init__(self, config: Any, options: Any) -> None:
        super().__init__(config, options)
        self.provider: SmsProvider | None = None
        self._session: aiohttp.ClientSession | None = None
        self._mobile = re.compile(self.options.mobile_pattern)

    async def start(self) -> None:
        if self.provider is None:  # a test may have put its own provider in place
            self._session = aiohttp.ClientSession()
            self.provider = provider_for(self.gateway_config, self._session)
        if self.provider is None:
            raise ConfigError([f"sinks ({self.name}): kind citizen_sms needs the sms block "
                               "(an SMS provider, docs/citizen.md#sms)"])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def recipient(self, case: CaseFacts) -> str | Skip:
        if case.channel not in self.options.channels:
            return Skip("channel")
        if case.anonymous:
            return Skip("anonymous")
        if not case.reply_wanted:
            return Skip("not_wanted")
        if case.phone is None:
            return Skip("no_address")
        if not self._mobile.match(case.phone):
            return Skip("not_mobile")
        return case.phone

    async def send(self, case: CaseFacts, address: str, values: NoticeValues) -> str:
        assert self.provider is not None
        message = SmsMessage(phone=address, text=self.template.render(values),
                             template_params=values.as_dict(), reference=case.case_code)
        try:
            return await self.provider.send(message)
        except SmsError as exc:
            error = f"SMS not sent: {exc}"
            if exc.retryable:
                raise RetriableSinkError(error) from None
            raise PermanentSinkError(error) from None
