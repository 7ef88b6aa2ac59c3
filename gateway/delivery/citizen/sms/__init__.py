"""Sending one SMS through a configurable HTTP provider (docs/citizen.md#sms).

The contract every provider keeps: ``send`` delivers one message or raises ``SmsError``
saying whether trying again may help. The providers (a generic JSON webhook and the
request shapes of the big Chinese SMS clouds) live in this package; the citizen sink
(gateway/delivery/citizen/) renders the template and calls ``send``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SmsMessage:
    """One text to one phone.

    ``phone``: E.164 (``+8613800138000``). ``text``: the rendered template, for providers
    that take free text (the generic webhook). ``template_params``: the template's values
    by name (``case_code``, ``lookup_url``, ``received_at``), for clouds whose templates
    are registered with them and filled from parameters."""

    phone: str
    text: str
    template_params: dict[str, str] = field(default_factory=dict)


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
