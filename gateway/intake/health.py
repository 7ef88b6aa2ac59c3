"""Per-source health as operations see it: up, degraded or down, with reason and since when.

The poller (pulled sources) and the webhook adapters (push sources) report here; the
readiness probe and the status views read it. It lives in process memory: each replica
reports what it sees of its own sources.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

UP, DEGRADED, DOWN, STANDBY, DISABLED, STARTING = (
    "up", "degraded", "down", "standby", "disabled", "starting",
)


@dataclass
class SourceState:
    name: str
    kind: str  # push | pull
    critical: bool = False
    state: str = STARTING
    reason: str = ""
    since: float = field(default_factory=time.time)
    last_success: float | None = None
    last_error: float | None = None
    last_error_text: str = ""
    consecutive_failures: int = 0
    last_poll_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class SourceStatus:
    """The states of every configured source, updated as things happen."""

    def __init__(self) -> None:
        self.sources: dict[str, SourceState] = {}

    def register(self, name: str, kind: str, critical: bool = False) -> SourceState:
        state = self.sources[name] = SourceState(name, kind, critical)
        return state

    def _move(self, name: str, new_state: str, reason: str) -> SourceState:
        entry = self.sources[name]
        if entry.state != new_state:
            entry.state, entry.since = new_state, time.time()
        entry.reason = reason
        return entry

    def success(self, name: str, poll_s: float | None = None) -> None:
        entry = self._move(name, UP, "")
        entry.last_success = time.time()
        entry.consecutive_failures = 0
        if poll_s is not None:
            entry.last_poll_s = poll_s

    def failure(self, name: str, reason: str, *, degraded_only: bool = False) -> None:
        entry = self._move(name, DEGRADED if degraded_only else DOWN, reason)
        entry.last_error, entry.last_error_text = time.time(), reason
        entry.consecutive_failures += 1

    def set(self, name: str, state: str, reason: str = "") -> None:
        self._move(name, state, reason)

    def critical_down(self) -> list[str]:
        return sorted(n for n, s in self.sources.items()
                      if s.critical and s.state in (DOWN, DISABLED))
