"""The sink contract: deliver a batch, say per entry what happened.

A sink raises nothing for a single bad entry: ``deliver`` returns one ``Outcome`` per
delivery (``None`` for delivered, else the ``SinkError`` that happened), so one refused
entry does not hold back the rest of the batch. The forwarder owns retries and
dead-lettering; a sink never retries on its own beyond ``immediate_attempts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from gateway.model.errors import SinkError
from gateway.store import Store
from gateway.store.outbox import Delivery
from gateway.support.config import GatewayConfig, SinkConfig
from gateway.support.connection_check import ConnectionCheck
from gateway.support.mail import Mailer
from gateway.support.plugin import Configurable, OptionsT

Outcome = SinkError | None


class SinkOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class SinkEnv:
    """What a running gateway offers a sink beyond its own options: the whole config (time
    zone, public URL, keys), the store and the mailer. Most kinds need none of it; the
    citizen sinks (gateway/delivery/citizen/) record what they sent in the store and mail
    through the ``smtp`` block."""

    config: GatewayConfig
    store: Store
    mailer: Mailer | None


class Sink(Configurable[OptionsT]):
    """Base of every sink kind; subclasses name their options model as the type parameter
    (``gateway.support.plugin``) and implement ``deliver``."""

    Options: ClassVar[type[BaseModel]] = SinkOptions
    # A sink that writes back to the citizen (gateway/delivery/citizen/) needs the
    # reporter's address even on a confidential case: it answers the same person, it
    # discloses nothing, so the forwarder hands it the case unmasked.
    answers_the_reporter: ClassVar[bool] = False

    def __init__(self, config: SinkConfig, options: Any) -> None:
        self.options = self.validated_options(options)
        self.config = config
        self.name = config.name

    def bind(self, env: SinkEnv) -> None:
        """Take what the gateway offers (called once, before ``start``); kinds that need
        nothing of it keep this default."""

    async def start(self) -> None:
        """Open connections or files."""

    async def close(self) -> None:
        """Release what ``start`` opened."""

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        raise NotImplementedError

    async def check_connection(self) -> ConnectionCheck:
        """Reach the destination without delivering anything, for ``minsheng check-config
        --connect`` (the command bounds the time; it need not ``start`` the sink first).
        Kinds that can tell implement it; the others say so."""
        return ConnectionCheck.not_checked()


SinkClass = type[Sink[Any]]
