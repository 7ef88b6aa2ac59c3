"""Figures of the public edge: connections held and cut, defects answered 500, loop lag.

They live in the gateway's registry (``/metrics``) but apart from ``gateway.ops.metrics``
because the HTTP protocol and the loop monitor feed them, not the store or the intake.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CutReason = Literal["head_timeout", "body_too_slow", "evicted_idle", "over_capacity"]
CUT_REASONS: tuple[CutReason, ...] = (
    "head_timeout", "body_too_slow", "evicted_idle", "over_capacity")
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class EdgeMetrics:
    """Counters a test or an alert reads to see the edge hold: a 500 is a defect signal."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.connections_open = Gauge(
            "minsheng_http_connections_open",
            "HTTP connections open now (refused ones over max_connections excluded)",
            registry=registry,
        )
        self.connections_cut = Counter(
            "minsheng_http_connections_cut",
            "HTTP connections the edge closed or refused: head_timeout (request head not "
            "complete in time), body_too_slow (body under body_min_rate), evicted_idle (an idle "
            "connection closed with a 503 to make room at server.max_connections), "
            "over_capacity (a new connection refused with a 503: every one was busy)",
            ["reason"], registry=registry,
        )
        for reason in CUT_REASONS:
            self.connections_cut.labels(reason)
        self.unexpected_errors = Counter(
            "minsheng_http_unexpected_errors",
            "Requests answered 500 because a handler raised unexpectedly: a defect, by route",
            ["route"], registry=registry,
        )
        self.loop_lag = Histogram(
            "minsheng_event_loop_lag_seconds",
            "How late the event loop woke a 50 ms timer: how long something held the loop",
            buckets=LAG_BUCKETS, registry=registry,
        )

    def cut(self, reason: CutReason) -> None:
        self.connections_cut.labels(reason).inc()
