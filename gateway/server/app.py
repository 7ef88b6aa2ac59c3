"""Wiring: config → store, sinks, forwarder, adapters, intake and the HTTP server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.dedup.deduplicator import Deduplicator
from gateway.delivery.attachments import AttachmentShaper
from gateway.delivery.forwarder import Forwarder
from gateway.delivery.sinks.base import Sink, SinkClass, SinkEnv
from gateway.intake.health import STANDBY, UP, SourceStatus
from gateway.intake.pipeline import Intake, SourceBinding
from gateway.intake.poller import PolledAdapter, Poller
from gateway.intake.shared_buckets import BucketArena
from gateway.intake.sources import Adapter, AdapterClass, AdapterEnv
from gateway.model.attachments import AttachmentStore
from gateway.model.normalize import NormalizerContext
from gateway.ops.edge_metrics import EdgeMetrics
from gateway.ops.metrics import GatewayMetrics
from gateway.ops.retention_job import RetentionJob
from gateway.reports.schedule import WeeklyReports
from gateway.routing.hints import RoutingHints, load_hints
from gateway.server.gc_tuning import settle_heap
from gateway.server.http_edge import EdgeSite, start_site
from gateway.server.lookup import fill_rows as fill_lookup_rows
from gateway.server.loop_lag import LoopLagMonitor
from gateway.server.worker_role import WorkerRole
from gateway.store import Store, audit, outbox
from gateway.store.group_write_lock import GroupWriteLock
from gateway.store.purge_loop import PurgeLoop
from gateway.support import registry
from gateway.support.config import GatewayConfig, SourceConfig
from gateway.support.logging import get_logger
from gateway.support.mail import Mailer

log = get_logger("gateway")


def open_store(config: GatewayConfig, group_lock: GroupWriteLock | None = None) -> Store:
    """The store of ``config``; ``group_lock``: a SQLite worker group's writers' turns."""
    return Store.from_url(
        config.store.url, config.store.batch_max, config.store.connect_timeout_s, group_lock
    )


def binding_for(config: GatewayConfig, source: SourceConfig) -> SourceBinding:
    cls: AdapterClass = registry.adapter_class(source.adapter)
    fmt = source.format or cls.default_format
    resources = cls.resources(cls.Options.model_validate(source.options))
    context = NormalizerContext(source.name, config.tz, source.options, resources)
    return SourceBinding(registry.normalizer(fmt), context)


def routing_hints(config: GatewayConfig) -> RoutingHints:
    """Taxonomy, model and rules of the config, loaded once (a bad file: ConfigError)."""
    return load_hints(config.taxonomy.path, config.classifier, config.routing.rules,
                      config.deadlines, config.tz)


def build_intake(config: GatewayConfig, store: Store, hints: RoutingHints | None = None,
                 buckets: BucketArena | None = None) -> Intake:
    attachments = AttachmentStore(config.attachments_dir)

    def save_blobs(blobs: Mapping[str, bytes]) -> None:
        for digest, data in blobs.items():
            attachments.keep(data, digest)

    intake = Intake(
        store,
        region=config.region_code,
        timezone=config.tz,
        sinks=[s.name for s in config.sinks if s.enabled],
        bindings={s.name: binding_for(config, s) for s in config.sources},
        save_blobs=save_blobs,
        dedup=Deduplicator(config.dedup, [s.name for s in config.sinks if s.enabled and s.events],
                           keys=config.privacy.keys(config.data_dir)),
        buckets=buckets,
    )
    intake.hints = (hints or routing_hints(config)).apply
    intake.identifier_keys = config.privacy.keys(config.data_dir)
    return intake


def build_adapters(config: GatewayConfig, background: bool = True,
                   buckets: BucketArena | None = None) -> dict[str, Adapter[Any]]:
    """An instance of every enabled source's adapter, by source name; ``background``:
    they may start their once-per-machine loops (the primary worker); ``buckets``: the
    rate limits' memory (the worker group's; by default their own)."""
    env = AdapterEnv(AttachmentStore(config.attachments_dir), config.data_dir, config.tz,
                     background, buckets or BucketArena())
    adapters: dict[str, Adapter[Any]] = {}
    for source in config.sources:
        if source.enabled:
            cls: AdapterClass = registry.adapter_class(source.adapter)
            adapters[source.name] = cls(source, cls.Options.model_validate(source.options), env)
    return adapters


def wire_intake(config: GatewayConfig, store: Store, hints: RoutingHints | None = None,
                background: bool = True, buckets: BucketArena | None = None,
                ) -> tuple[Intake, dict[str, Adapter[Any]]]:
    """The intake and every enabled source's adapter, with the adapters' own flows bound
    to it: what the gateway runs, and what ``minsheng quarantine reprocess`` needs, so a
    phone record goes back through its call flow there too."""
    intake = build_intake(config, store, hints, buckets)
    adapters = build_adapters(config, background, intake.buckets)
    bind_flows(intake, adapters)
    return intake, adapters


def bind_flows(intake: Intake, adapters: Mapping[str, Adapter[Any]]) -> None:
    """Let the intake hand records back to adapters that have a flow of their own."""
    for name, adapter in adapters.items():
        flow = adapter.flow(intake)
        if flow is not None:
            intake.flows[name] = flow


async def rekey_reporters(store: Store, dedup: Deduplicator) -> int:
    """File the cases migration 10 left without reporter keys under keyed digests, a
    chunk per transaction (a no-op once done); returns how many were filed again."""
    total = 0
    while n := await store.write(dedup.rekey):
        total += n
    if total:
        log.info("dedup_reporters_rekeyed", cases=total)
    return total


@dataclass
class Gateway:
    """A running gateway: start it, serve, stop it gracefully. ``role``: its part in a
    worker group (gateway/server/worker_role.py); by default the whole gateway."""

    config: GatewayConfig
    role: WorkerRole = field(default_factory=WorkerRole)
    store: Store = field(init=False)
    intake: Intake = field(init=False)
    forwarder: Forwarder = field(init=False)
    adapters: dict[str, Adapter[Any]] = field(init=False, default_factory=dict)
    status: SourceStatus = field(init=False, default_factory=SourceStatus)
    poller: Poller = field(init=False)
    metrics: GatewayMetrics = field(init=False)
    edge: EdgeMetrics = field(init=False)
    loop_lag: LoopLagMonitor | None = field(init=False, default=None)
    site: EdgeSite | None = field(init=False, default=None)
    routing_hints: RoutingHints = field(init=False)
    reports: WeeklyReports | None = field(init=False, default=None)
    audit_retention: PurgeLoop | None = field(init=False, default=None)
    retention: RetentionJob | None = field(init=False, default=None)
    mailer: Mailer | None = field(init=False, default=None)
    started: bool = field(init=False, default=False)
    _runner: web.AppRunner | None = field(init=False, default=None)

    async def start(self) -> None:
        from gateway.server.http import build_app

        config, primary = self.config, self.role.primary
        self.metrics = GatewayMetrics(self)
        self.edge = EdgeMetrics(self.metrics.registry)
        self.store = open_store(config, self.role.write_lock)
        await self.store.start()
        # One process forwards from a SQLite store (the only one, or the primary worker):
        # no lease is live when it starts.
        if primary and self.store.engine == "sqlite":
            await self.store.write(lambda tx: outbox.release_leases(tx))
        self.mailer = Mailer(config.smtp) if config.smtp is not None else None
        self.forwarder = Forwarder(
            self.store, self._sinks() if primary else [], config.store.outbox_retention_s,
            AttachmentShaper(AttachmentStore(config.attachments_dir), config.api.public_url),
        )
        self.routing_hints = routing_hints(config)
        self.intake, self.adapters = wire_intake(config, self.store, self.routing_hints,
                                                 background=primary, buckets=self.role.buckets)
        self.intake.on_enqueued = self.role.forwarder_waker(self.forwarder.notify)
        if primary:
            await self._start_up_chores()
        app = build_app(self)
        if self.role.count > 1:
            app.on_response_prepare.append(self.role.tag_response)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None,
            shutdown_timeout=config.server.shutdown_timeout_s,
        )
        await self._runner.setup()
        self.site = await start_site(self._runner, config.server, self.edge, self.role.sock)
        if primary:
            await self.forwarder.start()
            self.role.listen_for_wakes(self.forwarder.notify)
        await self._start_sources()
        self.loop_lag = LoopLagMonitor(self.edge.loop_lag, config.server.loop_lag_warn_ms / 1000)
        self.loop_lag.start()
        if primary:
            self._start_loops()
        self.started = True
        log.info("gateway_started", listen=config.server.listen, store=self.store.engine,
                 sources=sorted(self.adapters), sinks=[s.name for s in config.sinks],
                 worker=self.role.index, workers=self.role.count, pid=os.getpid())

    async def _start_up_chores(self) -> None:
        """Once per start of the machine's gateway (the primary worker): fill what older
        versions left undone. Both are safe beside other writers (chunked, locked)."""
        if self.intake.identifier_keys is not None:  # cases filed before the look-up existed
            await fill_lookup_rows(self.store, self.intake.identifier_keys)
        await rekey_reporters(self.store, self.intake.dedup)

    async def _start_sources(self) -> None:
        """Start every adapter; pulled sources are polled by the primary worker only (the
        others show them on standby, as a replica without the lease does)."""
        self.poller = Poller(self.store, self.intake, self.status)
        for adapter in self.adapters.values():
            pulled = isinstance(adapter, PolledAdapter)
            self.status.register(adapter.name, "pull" if pulled else "push",
                                 adapter.config.critical)
            await adapter.start(self.intake)
            if not isinstance(adapter, PolledAdapter):
                self.status.set(adapter.name, UP, "listening")
            elif self.role.primary:
                self.poller.start(adapter)
            else:
                self.status.set(adapter.name, STANDBY, "worker 0 polls this source")

    def _start_loops(self) -> None:
        """The once-per-machine loops: audit-log purge, weekly reports, retention."""
        config = self.config
        self.audit_retention = PurgeLoop(
            self.store, "audit_log", audit.purge,
            config.privacy.audit_retention_days * 86400.0, audit.PURGE_CHUNK)
        self.audit_retention.start()
        if config.reports.enabled:
            self.reports = WeeklyReports(config, self.store, self.mailer)
            self.reports.start()
        if config.retention.enabled:
            self.retention = RetentionJob(config, self.store)
            self.retention.start()

    def _sinks(self) -> list[tuple[Any, Sink[Any]]]:
        sinks = []
        env = SinkEnv(self.config, self.store, self.mailer)
        for sink_config in self.config.sinks:
            if sink_config.enabled:
                cls: SinkClass = registry.sink_class(sink_config.kind)
                sink = cls(sink_config, sink_config.options)
                sink.bind(env)
                sinks.append((sink_config, sink))
        return sinks

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, flush the outbox batch, close."""
        self.started = False
        if self._runner is not None:
            await self._runner.cleanup()  # stops listening, waits for in-flight handlers
        await self.poller.stop()
        if self.reports is not None:
            await self.reports.stop()
        if self.retention is not None:
            await self.retention.stop()
        for adapter in self.adapters.values():
            await adapter.stop()
        await self.forwarder.stop()
        if self.audit_retention is not None:
            await self.audit_retention.stop()
        await self.store.close()
        if self.loop_lag is not None:
            await self.loop_lag.stop()
        log.info("gateway_stopped", delivered=self.forwarder.delivered)

    async def run_forever(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.role.watch_parent(stop.set)  # a worker whose parent died stops too
        await self.start()
        settle_heap()  # only a serving process: a test's in-process gateways leave gc alone
        await stop.wait()
        log.info("gateway_stopping")
        await self.stop()
        self.role.stop_listening()
