"""Figures of what became of cases after intake, from the statuses the case platform sends
back (docs/downstream.md); read by the store snapshot of ``gateway.ops.metrics``."""

from __future__ import annotations

from prometheus_client.core import HistogramMetricFamily, Metric

# Minutes to a week: a platform accepts within the hour or within the working days.
ACCEPT_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 8 * 3600.0, 86400.0, 3 * 86400.0,
                  7 * 86400.0)


def accept_delay(delays: tuple[list[int], float, int]) -> Metric:
    """Intake to the platform's first ``accepted`` status, over every case of the store
    that has one (counted by the store, so statuses imported from a file count too)."""
    cumulative, total_s, count = delays
    family = HistogramMetricFamily(
        "minsheng_case_accept_delay_seconds",
        "Time from intake to the case platform's first 'accepted' status, per case")
    buckets = [(f"{bound:g}", n) for bound, n in zip(ACCEPT_BUCKETS, cumulative, strict=True)]
    family.add_metric([], [*buckets, ("+Inf", count)], total_s)
    return family
