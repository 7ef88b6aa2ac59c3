"""``minsheng check-config --connect``: reach every target the config names, once.

The store, each source and each sink answer for themselves (``check_connection`` of
their base classes, ``gateway/store/connection.py``); this module only runs them side by
side, each bounded by the same short timeout, and prints one line per target, named as
in the config. Nothing is delivered, fetched into the journal or migrated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

import click

from gateway.delivery.sinks.base import Sink, SinkClass
from gateway.intake.sources import Adapter
from gateway.server.app import build_adapters
from gateway.store.connection import check_store
from gateway.support import registry
from gateway.support.config import GatewayConfig
from gateway.support.connection_check import ConnectionCheck, run_check

DISABLED = ConnectionCheck.not_checked("已停用", "enabled: false")
Probe = Awaitable[ConnectionCheck] | ConnectionCheck


async def _settled(probe: Probe, timeout_s: float) -> ConnectionCheck:
    if isinstance(probe, ConnectionCheck):
        return probe
    return await run_check(probe, timeout_s)


def _sinks(config: GatewayConfig) -> dict[str, Sink[Any]]:
    sinks: dict[str, Sink[Any]] = {}
    for sink_config in config.sinks:
        if sink_config.enabled:
            cls: SinkClass = registry.sink_class(sink_config.kind)
            sinks[sink_config.name] = cls(sink_config, sink_config.options)
    return sinks


def _probes(config: GatewayConfig, adapters: dict[str, Adapter[Any]],
            sinks: dict[str, Sink[Any]], timeout_s: float) -> list[tuple[str, Probe]]:
    """(target as the config names it, its check) for the store, each source, each sink.
    The store's driver blocks a thread: its own connect timeout is kept within ours."""
    engine = config.store.url.partition(":")[0]
    connect_s = min(config.store.connect_timeout_s, timeout_s)
    probes: list[tuple[str, Probe]] = [
        (f"store ({engine})", check_store(config.store.url, connect_s)),
    ]
    for source in config.sources:
        adapter = adapters.get(source.name)
        probes.append((f"sources.{source.name} ({source.adapter})",
                       adapter.check_connection() if adapter is not None else DISABLED))
    for sink_config in config.sinks:
        sink = sinks.get(sink_config.name)
        probes.append((f"sinks.{sink_config.name} ({sink_config.kind})",
                       sink.check_connection() if sink is not None else DISABLED))
    return probes


async def check_connections(config: GatewayConfig,
                            timeout_s: float) -> list[tuple[str, ConnectionCheck]]:
    """Every target's check, in config order, run concurrently."""
    adapters = build_adapters(config)
    sinks = _sinks(config)
    try:
        probes = _probes(config, adapters, sinks, timeout_s)
        results = await asyncio.gather(*(_settled(p, timeout_s) for _, p in probes))
    finally:
        for adapter in adapters.values():  # an opinion source's HTTP client
            with contextlib.suppress(Exception):
                await adapter.stop()
        for sink in sinks.values():
            with contextlib.suppress(Exception):
                await sink.close()
    return [(target, result) for (target, _), result in zip(probes, results, strict=True)]


def report_connections(config: GatewayConfig, timeout_s: float) -> int:
    """Print one line per target; the exit status: 1 if any failed, else 0."""
    results = asyncio.run(check_connections(config, timeout_s))
    for target, result in results:
        click.echo(result.line(target))
    failed = sum(1 for _, r in results if r.state == "failed")
    if failed:
        click.echo(f"{failed} 个目标连接失败 ({failed} target(s) failed)", err=True)
    return 1 if failed else 0
