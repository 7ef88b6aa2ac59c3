"""The sink contract: deliver a batch, say per entry what happened.

A sink raises nothing for a single bad entry: ``deliver`` returns one ``Outcome`` per
delivery (``None`` for delivered, else the ``SinkError`` that happened), so one refused
entry does not hold back the rest of the batch. The forwarder owns retries and
dead-lettering; a sink never retries on its own beyond ``immediate_attempts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from gateway.model.errors import SinkError
from gateway.store.outbox import Delivery
from gateway.support.config import SinkConfig
from gateway.support.connection_check import ConnectionCheck
from gateway.support.plugin import Configurable, OptionsT

Outcome = SinkError | None


class SinkOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sink(Configurable[OptionsT]):
    """Base of every sink kind; subclasses name their options model as the type parameter
    (``gateway.support.plugin``) and implement ``deliver``."""

    Options: ClassVar[type[BaseModel]] = SinkOptions

    def __init__(self, config: SinkConfig, options: Any) -> None:
        self.options = self.validated_options(options)
        self.config = config
        self.name = config.name

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
