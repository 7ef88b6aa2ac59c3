"""The ``jsonl`` sink: append each delivery as one JSON line to a file, fsync'd per batch.

Handy when no downstream system is running yet (the embedded default), and as an audit
trail. At-least-once: after a crash between the write and the outbox update, a line may
appear twice; readers de-duplicate on ``case_code``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gateway.config import SinkConfig
from gateway.errors import RetriableSinkError
from gateway.sinks.base import Outcome, Sink
from gateway.store.outbox import Delivery


class JsonlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path


class JsonlSink(Sink):
    Options = JsonlOptions

    def __init__(self, config: SinkConfig, options: Any) -> None:
        super().__init__(config, options)
        self.path = JsonlOptions.model_validate(options).path

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        try:
            await asyncio.to_thread(self._append, [d.body for d in batch])
        except OSError as exc:
            error = RetriableSinkError(f"cannot write {self.path}: {exc.strerror}")
            return [error for _ in batch]
        return [None for _ in batch]

    def _append(self, bodies: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(body.replace("\n", " ") + "\n" for body in bodies).encode("utf-8")
        with open(self.path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
