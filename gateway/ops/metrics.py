"""Prometheus metrics of one gateway, served at ``GET /metrics``.

Each ``Gateway`` has its own ``CollectorRegistry``: several gateways in one process
(tests) never share figures. Nothing is incremented across the code base: collectors
read, at scrape time, what the gateway keeps anyway — the intake's outcome counts, the
per-source status, the forwarder's counters — and a snapshot of the store (outbox,
quarantine, rejections by reason, phone KPIs) refreshed just before each scrape. Only
the intake latency is observed, by the HTTP middleware.

Figures from the process (intake outcomes, deliveries, source states) are this
replica's; figures from the store (backlog, dead letters, quarantine, rejection
reasons, phone KPIs) are the whole store's, the same on every replica of a shared
PostgreSQL: aggregate those with ``max``, the others with ``sum``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, get_args

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.intake.health import DEGRADED, DISABLED, DOWN, STANDBY, STARTING, UP
from gateway.ops.case_metrics import ACCEPT_BUCKETS, accept_delay
from gateway.ops.running import RunningGateway
from gateway.store import Tx, outbox, quarantine, statuses
from gateway.store import ops_queries as q
from gateway.store.citizen_notices import NOTICE_OUTCOMES, SKIP_REASONS
from gateway.support.logging import get_logger
from gateway.support.mail import MAIL_PURPOSES, MailOutcome
from gateway.support.thread_cpu import thread_cpu_s

log = get_logger("gateway.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = (UP, DEGRADED, DOWN, STANDBY, DISABLED, STARTING)
OUTCOMES = ("new", "repeat", "related", "replay", "rejected", "quarantined", "filtered")
ACCEPTED = ("new", "repeat", "related")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A journaled rejection older than this is surely committed: the tally's floor passes it.
SETTLE_S = 300.0
SCAN_BATCH = 5000


def optional_provider(module: str, name: str) -> Callable[..., Any] | None:
    """``module.name`` if another part of the gateway provides it (imported lazily)."""
    try:
        found = importlib.import_module(module)
    except ImportError:
        return None
    except Exception as exc:  # a broken optional module must not break the scrape
        log.warning("optional_module_failed", module=module, error=repr(exc))
        return None
    provider = getattr(found, name, None)
    return provider if callable(provider) else None


def call_optional(module: str, name: str, *args: Any) -> Any:
    """``module.name(*args)`` if another part provides it; None if absent or failing."""
    provider = optional_provider(module, name)
    if provider is None:
        return None
    try:
        return provider(*args)
    except Exception as exc:  # e.g. its tables are not migrated yet: skip, say why
        log.warning("optional_provider_failed", provider=f"{module}.{name}", error=repr(exc))
        return None


def reason_codes(detail: str | None) -> set[str]:
    """The reason codes of a rejection's journal detail (a list of field errors)."""
    try:
        errors = json.loads(detail) if detail else []
    except ValueError:
        return {"unknown"}
    codes = {str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")}
    return codes or {"unknown"}


@dataclass
class RejectionTally:
    """Every rejection in the journal by source, channel and reason code, read once.

    Each scan reads the rejected records above ``floor``. Ids are handed out before
    commit, so a late commit may land below ids already seen: the floor only passes
    records older than ``SETTLE_S`` and the ids above it are remembered.
    """

    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    floor: int = 0
    seen: set[int] = field(default_factory=set)

    def scan(self, tx: Tx, now: float) -> None:
        cursor, settled = self.floor, True
        while True:
            rows = q.rejected_after(tx, cursor, limit=SCAN_BATCH)
            for row in rows:
                if row.id not in self.seen:
                    for code in reason_codes(row.detail):
                        self.counts[(row.source, row.channel, code)] += 1
                settled = settled and row.received_at < now - SETTLE_S
                if settled:
                    self.floor = row.id
                else:
                    self.seen.add(row.id)
            if len(rows) < SCAN_BATCH:
                break
            cursor = rows[-1].id
        self.seen = {i for i in self.seen if i > self.floor}


@dataclass
class StoreSnapshot:
    """What the store said at the last refresh (``ok`` False: it did not answer)."""

    ok: bool = False
    at: float = 0.0
    sinks: dict[str, dict[str, Any]] = field(default_factory=dict)
    quarantine_open: int = 0
    quarantine_oldest_age_s: float = 0.0
    calls: dict[str, Any] | None = None
    hot_topic_events: int | None = None
    accept_delays: tuple[list[int], float, int] = ([], 0.0, 0)


class GatewayMetrics:
    """The registry of one gateway and what fills it; ``await render()`` per scrape."""

    def __init__(self, gateway: RunningGateway) -> None:
        self.gateway = gateway
        self.registry = CollectorRegistry(auto_describe=False)
        self.intake_latency = Histogram(
            "minsheng_intake_latency_seconds",
            "Time to answer an intake request (journal and commit included), by source",
            ["source"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.snapshot = StoreSnapshot()
        self.rejections = RejectionTally()
        self._lock = asyncio.Lock()
        self.registry.register(_ProcessFigures(gateway))
        self.registry.register(_StoreFigures(self))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe_intake(self, path: str, seconds: float) -> None:
        """Record one ``/intake/<source>…`` request (unknown sources share one label)."""
        parts = path.split("/")
        source = parts[2] if len(parts) > 2 and parts[2] in self.gateway.adapters else "other"
        self.intake_latency.labels(source).observe(seconds)

    async def refresh(self) -> StoreSnapshot:
        """Read the store's figures (one read transaction); on failure mark the store down."""
        async with self._lock:
            try:
                self.snapshot = await self.gateway.store.read(self._read)
            except Exception as exc:
                log.warning("metrics_store_unavailable", error=str(exc))
                self.snapshot = StoreSnapshot(ok=False, at=time.time())
            return self.snapshot

    def _read(self, tx: Tx) -> StoreSnapshot:
        now = time.time()
        self.rejections.scan(tx, now)
        kpis = call_optional("adapters.cdr_webhook.flow", "kpis", tx, now)
        hot = call_optional("gateway.store.dedup_index", "hot_topic_events_total", tx)
        held = quarantine.open_summary(tx)
        return StoreSnapshot(
            ok=True, at=now, sinks=outbox.stats(tx), quarantine_open=held.open,
            quarantine_oldest_age_s=held.oldest_age_s,
            calls=None if kpis is None else dict(kpis),
            hot_topic_events=None if hot is None else int(hot),
            accept_delays=statuses.accept_delays(tx, ACCEPT_BUCKETS),
        )

    async def render(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)


def channel_of(gateway: RunningGateway, source: str) -> str:
    adapter = gateway.adapters.get(source)
    return str(getattr(adapter, "channel", "unknown")) if adapter else "unknown"


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class _ProcessFigures:
    """What this process keeps in memory: intake outcomes, sources, deliveries."""

    def __init__(self, gateway: RunningGateway) -> None:
        self.gateway = gateway
        # Built by Gateway.start, on the event loop's thread: the thread of its CPU figure.
        self.loop_thread_id = threading.get_native_id()

    def collect(self) -> Iterator[Metric]:
        gw = self.gateway
        if not hasattr(gw, "intake"):
            return
        yield from self._intake()
        yield self._refused()
        yield from self._sources()
        yield from self._deliveries()
        yield self._hint_failures()
        yield self._mails()
        yield from self._citizen_notices()
        yield from self._retention()
        yield from self._store_writer()
        yield self._threads_cpu()
        started = _gauge("minsheng_gateway_started", "1 once the gateway has started", [])
        started.add_metric([], 1.0 if gw.started else 0.0)
        yield started

    def _intake(self) -> Iterator[Metric]:
        gw = self.gateway
        counts: Counter[tuple[str, str]] = Counter(gw.intake.counts)
        for source in gw.adapters:  # every series from zero, so rate() sees the first item
            for outcome in OUTCOMES:
                counts[(source, outcome)] += 0
        items = CounterMetricFamily(
            "minsheng_intake_items", "Records taken in, by source, channel and outcome "
            "(new, repeat, related, replay, rejected, quarantined, filtered)",
            labels=["source", "channel", "outcome"])
        received = CounterMetricFamily(
            "minsheng_intake_received", "Records received, by source and channel",
            labels=["source", "channel"])
        accepted = CounterMetricFamily(
            "minsheng_intake_accepted", "Records that became cases (new, repeat, related)",
            labels=["source", "channel"])
        totals: Counter[str] = Counter()
        kept: Counter[str] = Counter()
        for (source, outcome), n in sorted(counts.items()):
            items.add_metric([source, channel_of(gw, source), outcome], n)
            totals[source] += n
            kept[source] += n if outcome in ACCEPTED else 0
        for source in sorted(totals):
            received.add_metric([source, channel_of(gw, source)], totals[source])
            accepted.add_metric([source, channel_of(gw, source)], kept[source])
        yield from (items, received, accepted)

    def _refused(self) -> Metric:
        """Requests a push source refused before intake (rate limit, credentials): never
        journaled, so only the adapters' own counts (``refusals``) know them."""
        refused = CounterMetricFamily(
            "minsheng_intake_refused", "Requests refused before intake, by source and reason "
            "(rate_limited, unauthorized, ...); nothing of them was journaled",
            labels=["source", "reason"])
        for name, adapter in sorted(self.gateway.adapters.items()):
            for reason, n in sorted(adapter.refusals.items()):
                refused.add_metric([name, reason], n)
        return refused

    def _sources(self) -> Iterator[Metric]:
        gw = self.gateway
        families = {
            "up": _gauge("minsheng_source_up", "1 when the source is up", ["source", "channel"]),
            "state": _gauge("minsheng_source_state", "1 for the current state of the source "
                            "(up, degraded, down, standby, disabled, starting)",
                            ["source", "channel", "state"]),
            "since": _gauge("minsheng_source_state_since_timestamp_seconds",
                            "When the source entered its current state", ["source", "channel"]),
            "critical": _gauge("minsheng_source_critical",
                               "1 when the source is critical for readiness", ["source"]),
            "success": _gauge("minsheng_source_last_success_timestamp_seconds",
                              "Last successful poll or intake of the source", ["source"]),
            "error": _gauge("minsheng_source_last_error_timestamp_seconds",
                            "Last failure of the source", ["source"]),
            "failures": _gauge("minsheng_source_consecutive_failures",
                               "Failures since the last success", ["source"]),
            "poll": _gauge("minsheng_source_poll_duration_seconds",
                           "Duration of the last successful poll (pulled sources)", ["source"]),
        }
        for name, s in sorted(gw.status.sources.items()):
            channel = channel_of(gw, name)
            families["up"].add_metric([name, channel], 1.0 if s.state == UP else 0.0)
            for state in STATES:
                families["state"].add_metric([name, channel, state], float(s.state == state))
            families["since"].add_metric([name, channel], s.since)
            families["critical"].add_metric([name], float(s.critical))
            families["failures"].add_metric([name], s.consecutive_failures)
            for key, value in (("success", s.last_success), ("error", s.last_error),
                               ("poll", s.last_poll_s)):
                if value is not None:
                    families[key].add_metric([name], value)
        yield from families.values()

    def _hint_failures(self) -> Metric:
        """Routing hints that failed: the case was filed without that hint."""
        failures = CounterMetricFamily(
            "minsheng_routing_hint_failures", "Routing hints (classification, routing, "
            "due_at) that failed; the case was filed without that hint", labels=["hint"])
        hints = getattr(self.gateway, "routing_hints", None)
        for kind in ("classification", "routing", "due_at"):
            failures.add_metric([kind], hints.failures[kind] if hints is not None else 0)
        return failures

    def _mails(self) -> Metric:
        """Mails the gateway sent or failed to send (the weekly report), by purpose."""
        mails = CounterMetricFamily(
            "minsheng_mails", "Mails sent through the smtp block, by purpose (weekly_report, "
            "citizen_reply, notify_test) "
            "and outcome (sent, failed: logged without addresses)", labels=["purpose", "outcome"])
        mailer = getattr(self.gateway, "mailer", None)
        for purpose in MAIL_PURPOSES:
            for outcome in get_args(MailOutcome):
                count = mailer.outcomes[(purpose, outcome)] if mailer is not None else 0
                mails.add_metric([purpose, outcome], count)
        return mails

    def _citizen_notices(self) -> Iterator[Metric]:
        """What the citizen sinks (citizen_email, citizen_sms) decided per entry. Read by
        duck type: operations do not import the delivery layer."""
        notices = CounterMetricFamily(
            "minsheng_citizen_notices", "Case codes sent back to citizens, by sink and outcome "
            "(sent, already_sent, skipped, failed)", labels=["sink", "outcome"])
        skipped = CounterMetricFamily(
            "minsheng_citizen_notices_skipped", "Cases that got no notice, by sink and reason",
            labels=["sink", "reason"])
        forwarder = getattr(self.gateway, "forwarder", None)
        for config, sink in getattr(forwarder, "sinks", []):
            outcomes, reasons = getattr(sink, "outcomes", None), getattr(sink, "skipped", None)
            if not isinstance(outcomes, Counter) or not isinstance(reasons, Counter):
                continue
            for outcome in NOTICE_OUTCOMES:
                notices.add_metric([config.name, outcome], outcomes[outcome])
            for reason in SKIP_REASONS:
                skipped.add_metric([config.name, reason], reasons[reason])
        yield notices
        yield skipped

    def _store_writer(self) -> Iterator[Metric]:
        """What this process's store writer did: group commits, what they held, what ran
        again, and (a SQLite worker group) its waits for its turn at the write lock."""
        db = self.gateway.store.db
        figures = [
            ("minsheng_store_batches", "Transactions the store writer committed (group "
             "commits)", db.batches),
            ("minsheng_store_batch_units", "Writes those transactions held; divided by "
             "batches: the mean group-commit size", db.units),
            ("minsheng_store_conflict_retries", "Batches run again whole after the database "
             "rolled them back in a conflict with another replica (a deadlock)", db.retries),
            ("minsheng_store_batch_reruns", "Batches run again write by write because one "
             "write in them failed", db.reruns),
            ("minsheng_store_turn_wait_seconds", "Seconds this worker's writer waited for its "
             "turn at the SQLite write lock (a SQLite worker group; else always 0)",
             db.group_lock.waited_s if db.group_lock else 0.0),
        ]
        for name, doc, count in figures:
            family = CounterMetricFamily(name, doc, labels=[])
            family.add_metric([], count)
            yield family

    def _threads_cpu(self) -> Metric:
        """CPU of the two threads that do the intake's work (gateway/support/thread_cpu.py
        says why); what is left of ``process_cpu_seconds_total`` is the other threads'."""
        family = CounterMetricFamily(
            "minsheng_thread_cpu_seconds", "CPU seconds of this process's event loop thread "
            "and store writer thread (Linux; docs/operations-metrics.md reads them)",
            labels=["thread"])
        threads = (("event_loop", self.loop_thread_id),
                   ("store_writer", self.gateway.store.db.writer_thread_id))
        for name, native_id in threads:
            seconds = thread_cpu_s(native_id)
            if seconds is not None:
                family.add_metric([name], seconds)
        return family

    def _retention(self) -> Iterator[Metric]:
        """What this replica's daily purge removed (gateway/ops/retention_job.py)."""
        job = getattr(self.gateway, "retention", None)
        purged = CounterMetricFamily(
            "minsheng_retention_purged", "Records the daily purge emptied by kind "
            "(delivered_case, refused_raw, caseless_call) and attachment files it deleted "
            "(files)",
            labels=["kind"])
        for kind in ("delivered_case", "refused_raw", "caseless_call", "files"):
            purged.add_metric([kind], job.purged[kind] if job is not None else 0)
        yield purged
        if job is not None and job.last_run is not None:
            last = _gauge("minsheng_retention_last_run_timestamp_seconds",
                          "When this replica last ran the daily purge", [])
            last.add_metric([], job.last_run)
            yield last

    def _deliveries(self) -> Iterator[Metric]:
        forwarder = getattr(self.gateway, "forwarder", None)
        attempts = CounterMetricFamily(
            "minsheng_delivery_attempts", "Deliveries to sinks by outcome (delivered, failed: "
            "retried later or dead-lettered)", labels=["sink", "outcome"])
        if forwarder is not None:
            for sink in sorted(forwarder.delivered):
                attempts.add_metric([sink, "delivered"], forwarder.delivered[sink])
                attempts.add_metric([sink, "failed"], forwarder.failed.get(sink, 0))
        yield attempts


class _StoreFigures:
    """The store's figures, from the snapshot taken just before the scrape."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        snap = self.metrics.snapshot
        store_up = _gauge("minsheng_store_up", "1 when the store answered the last scrape", [])
        store_up.add_metric([], 1.0 if snap.ok else 0.0)
        yield store_up
        yield self._rejections()
        if not snap.ok:
            return  # no stale figures: the alert on minsheng_store_up says why
        yield from self._outbox(snap)
        open_q = _gauge("minsheng_quarantine_open", "Open quarantine entries", [])
        open_q.add_metric([], snap.quarantine_open)
        held = _gauge("minsheng_quarantine_oldest_open_age_seconds",
                      "Age of the oldest open quarantine entry, never purged (0: none)", [])
        held.add_metric([], snap.quarantine_oldest_age_s)
        yield from (open_q, held)
        yield from _calls(snap.calls)
        if snap.hot_topic_events is not None:
            hot = CounterMetricFamily("minsheng_hot_topic_events", "Hot-topic events raised")
            hot.add_metric([], snap.hot_topic_events)
            yield hot
        yield accept_delay(snap.accept_delays)

    def _rejections(self) -> Metric:
        family = CounterMetricFamily(
            "minsheng_rejection_reasons", "Rejected records in the journal by reason code "
            "(a record with several reasons counts under each)",
            labels=["source", "channel", "reason"])
        for (source, channel, reason), n in sorted(self.metrics.rejections.counts.items()):
            family.add_metric([source, channel, reason], n)
        return family

    def _outbox(self, snap: StoreSnapshot) -> Iterator[Metric]:
        configured = [s.name for s in self.metrics.gateway.config.sinks if s.enabled]
        names = sorted(set(configured) | set(snap.sinks))
        pending = _gauge("minsheng_outbox_pending", "Outbox entries not delivered yet", ["sink"])
        age = _gauge("minsheng_outbox_oldest_pending_age_seconds",
                     "Age of the oldest undelivered outbox entry (0: none)", ["sink"])
        dead = _gauge("minsheng_outbox_dead", "Dead letters (deliveries that kept failing)",
                      ["sink"])
        dead_age = _gauge("minsheng_outbox_oldest_dead_age_seconds",
                          "Age of the oldest dead letter, never purged (0: none)", ["sink"])
        delivered = _gauge("minsheng_outbox_delivered", "Outbox entries delivered since the "
                           "store was created, those deleted by retention included (never "
                           "goes down)", ["sink"])
        for sink in names:
            entry = snap.sinks.get(sink, {})
            pending.add_metric([sink], entry.get("pending", 0))
            age.add_metric([sink], entry.get("oldest_pending_age_s", 0.0))
            dead.add_metric([sink], entry.get("dead", 0))
            dead_age.add_metric([sink], entry.get("oldest_dead_age_s", 0.0))
            delivered.add_metric([sink], entry.get("delivered", 0))
        yield from (pending, age, dead, dead_age, delivered)


def _calls(kpis: dict[str, Any] | None) -> Iterator[Metric]:
    """The hotline KPIs from ``adapters.cdr_webhook.flow.kpis(tx, now)``, when the phone
    channel is in."""
    if kpis is None:
        return
    ratio = kpis.get("answered_within_15s_ratio")
    if ratio is not None:
        family = _gauge("minsheng_calls_answered_within_15s_ratio",
                        "Share of inbound calls answered within 15 s of ringing", [])
        family.add_metric([], float(ratio))
        yield family
    abandoned = kpis.get("abandoned_total")
    if abandoned is not None:
        counter = CounterMetricFamily("minsheng_calls_abandoned",
                                      "Inbound calls the caller hung up before an answer")
        counter.add_metric([], float(abandoned))
        yield counter
