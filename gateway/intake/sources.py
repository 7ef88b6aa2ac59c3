"""What an adapter is. An adapter owns a transport and hands over ``RawRecord``s; it knows
nothing of the canonical schema (that is the normalizer's job).

A push adapter returns aiohttp routes mounted under ``/intake/<source>``; its handler
authenticates, reads, builds the raw record and calls ``Intake.submit``, which journals
before the handler answers. Pulled adapters (IMAP, feeds, pages) are driven by the
gateway's poller, which owns schedule, backoff and checkpoints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from gateway.intake.openapi import ApiPart
from gateway.intake.shared_buckets import BucketArena
from gateway.model.attachments import AttachmentStore
from gateway.model.schema import Channel
from gateway.support.config import SourceConfig
from gateway.support.connection_check import ConnectionCheck
from gateway.support.plugin import Configurable, OptionsT

if TYPE_CHECKING:
    from gateway.intake.pipeline import Flow, Intake


class AdapterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class AdapterEnv:
    """What the gateway lends an adapter."""

    attachments: AttachmentStore
    data_dir: Path
    timezone: ZoneInfo
    # This process runs the once-per-machine loops (one gateway process, or the primary of
    # a worker group, gateway/server/workers.py): an adapter starts its watch loops only here.
    background: bool = True
    # Where rate limits keep their buckets: shared by the workers of a group, so a limit
    # holds for the machine (gateway/intake/shared_buckets.py).
    buckets: BucketArena = field(default_factory=BucketArena)


class Adapter(Configurable[OptionsT]):
    """Base of every adapter: subclasses set the class attributes below and name their
    options model as the type parameter (``gateway.support.plugin``)."""

    Options: ClassVar[type[BaseModel]] = AdapterOptions
    channel: ClassVar[Channel]
    default_format: ClassVar[str]
    # Anyone may post to this adapter's routes by design (the web mailbox: the public
    # form of the centre's website). check-config then never asks it for credentials.
    public_by_design: ClassVar[bool] = False

    @classmethod
    def open_routes(cls, options: Any) -> list[str]:
        """What of the routes of a source with these (validated) options answers anyone
        without credentials, in words for check-config; none by default (a pulled adapter
        has no routes). gateway/support/config_checks.py refuses them off loopback."""
        return []

    def __init__(self, config: SourceConfig, options: Any, env: AdapterEnv) -> None:
        # The wiring validated the options already; a model instance passes through.
        self.options = self.validated_options(options)
        self.config = config
        self.name = config.name
        self.env = env
        self._intake: Intake | None = None
        # Requests a push adapter refused before intake, by reason (rate_limited, a failed
        # authentication…): never journaled, so counted here for /metrics.
        self.refusals: Counter[str] = Counter()

    @property
    def intake(self) -> Intake:
        """The intake this adapter was started with."""
        if self._intake is None:
            raise RuntimeError(f"source {self.name} is not started")
        return self._intake

    @classmethod
    def resources(cls, options: Any) -> dict[str, Any]:
        """What the source's normalizer needs resolved from the validated ``options``
        (files read, definitions parsed), handed to it as ``NormalizerContext.resources``
        so the normalizer does no I/O. Most adapters need none."""
        return {}

    def routes(self, intake: Intake) -> list[web.RouteDef]:
        """Routes of a push adapter; a pulled adapter has none."""
        return []

    def flow(self, intake: Intake) -> Flow | None:
        """A flow of the adapter's own for records that do not map one-to-one onto cases
        (phone calls joined from several events); ``Intake.reprocess`` hands quarantined
        records back to it. Most adapters have none: their records go through
        ``Intake.submit``."""
        return None

    async def start(self, intake: Intake) -> None:
        """Remember the intake; subclasses that start background work call this first."""
        self._intake = intake

    async def stop(self) -> None:
        """Stop background work."""

    async def check_connection(self) -> ConnectionCheck:
        """Reach what this source reads from (log in, fetch the first URL), for
        ``minsheng check-config --connect``; the command bounds the time. A push source
        has nothing to reach: others connect to the gateway."""
        return ConnectionCheck.not_checked("推送来源，由对方连接本网关",
                                           "push source: senders connect to the gateway")

    def openapi(self) -> ApiPart:
        """The adapter's operations in the gateway's OpenAPI document (gateway/intake/openapi.py):
        one per route that ``routes`` returns; a pulled adapter has none."""
        return ApiPart()


AdapterClass = type[Adapter[Any]]
