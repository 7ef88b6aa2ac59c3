"""What operations and the HTTP surface read of a running gateway, as a protocol.

``gateway.server.app.Gateway`` implements it. Metrics, the status views and the HTTP
routes take this instead of the ``Gateway`` class, so nothing below the server imports
the server (a typing-only import is still an arrow: it made a cycle here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gateway.intake.health import SourceStatus
from gateway.intake.pipeline import Intake
from gateway.intake.sources import Adapter
from gateway.ops.edge_metrics import EdgeMetrics
from gateway.store import Store
from gateway.support.config import GatewayConfig


class RendersMetrics(Protocol):
    async def render(self) -> bytes:
        """The Prometheus text exposition of the gateway's figures."""
        ...

    def observe_intake(self, path: str, seconds: float) -> None:
        """Record one ``/intake/<source>…`` request's latency."""
        ...


class RunningGateway(Protocol):
    @property
    def config(self) -> GatewayConfig: ...

    @property
    def store(self) -> Store: ...

    @property
    def intake(self) -> Intake: ...

    @property
    def adapters(self) -> Mapping[str, Adapter[Any]]: ...

    @property
    def status(self) -> SourceStatus: ...

    @property
    def started(self) -> bool: ...

    @property
    def metrics(self) -> RendersMetrics: ...

    @property
    def edge(self) -> EdgeMetrics: ...
