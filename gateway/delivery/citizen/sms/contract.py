"""The contract every SMS provider keeps: ``send`` delivers one message or raises
``SmsError`` saying whether trying again may help (docs/citizen.md#sms). Re-exported by
the package, where callers import it from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SmsMessage:
    """One text to one phone.

    ``phone``: E.164 (``+8613800138000``). ``text``: the rendered template, for providers
    that take free text (the generic webhook). ``template_params``: the template's values
    by name (``case_code``, ``lookup_url``, ``received_at``), for clouds whose templates
    are registered with them and filled from parameters. ``reference``: the sender's own
    id of the message (the case code), handed to the provider so that it can drop a
    repeat of at-least-once delivery or echo it back (``Idempotency-Key``, Aliyun's
    ``OutId``, Tencent's ``SessionContext``); optional."""

    phone: str
    text: str
    template_params: dict[str, str] = field(default_factory=dict)
    reference: str | None = None


class SmsError(Exception):
    """The provider did not take the message. ``retryable``: a timeout, a 5xx or a rate
    limit (try again later); otherwise (a bad number, a refused template, bad credentials)
    the entry goes to the dead letters."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class SmsProvider(Protocol):
    """One configured SMS provider."""

    async def send(self, message: SmsMessage) -> str:
        """Send one message; return the provider's id for it (logged, never the number)."""
        ...
