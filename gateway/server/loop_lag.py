"""Event-loop lag: how long something held the loop, seen from a timer that wakes late.

Every request, poll and delivery of a gateway shares one event loop; a handler that
parses a huge body on it stalls all of them (``/healthz`` included). The monitor sleeps
``interval_s`` again and again and records how much later than asked it woke up, in
``minsheng_event_loop_lag_seconds``; a hold over the threshold is logged as a warning.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import Histogram

from gateway.support.logging import get_logger

log = get_logger("gateway.loop")
INTERVAL_S = 0.05


class LoopLagMonitor:
    """Start in the loop to watch; ``stop()`` before the loop closes."""

    def __init__(self, histogram: Histogram, warn_after_s: float,
                 interval_s: float = INTERVAL_S) -> None:
        self.histogram = histogram
        self.warn_after_s = warn_after_s
        self.interval_s = interval_s
        self.worst_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.record(max(0.0, loop.time() - asked))

    def record(self, lag_s: float) -> None:
        self.histogram.observe(lag_s)
        self.worst_s = max(self.worst_s, lag_s)
        if lag_s > self.warn_after_s:
            log.warning("event_loop_held", ms=round(lag_s * 1000, 1),
                        threshold_ms=round(self.warn_after_s * 1000, 1))
