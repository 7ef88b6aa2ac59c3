"""The ``jsonl`` sink: append each delivery as one JSON line to a file, fsync'd per batch.

Handy when no downstream system is running yet (the embedded default), and as an audit
trail. At-least-once: after a crash between the write and the outbox update, a line may
appear twice; readers de-duplicate on ``case_code``. A line cut short by a crash is
ended before the next batch, so it never swallows the next case.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gateway.delivery.sinks.base import Outcome, Sink
from gateway.model.errors import RetriableSinkError
from gateway.model.private_files import open_private, private_dir
from gateway.store.outbox import Delivery
from gateway.support.config import SinkConfig
from gateway.support.connection_check import ConnectionCheck, writable_folder


class JsonlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path


class JsonlSink(Sink[JsonlOptions]):

    def __init__(self, config: SinkConfig, options: Any) -> None:
        super().__init__(config, options)
        self.path = self.options.path

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        try:
            await asyncio.to_thread(self._append, [d.body for d in batch])
        except OSError as exc:
            error = RetriableSinkError(f"cannot write {self.path}: {exc.strerror}")
            return [error for _ in batch]
        return [None for _ in batch]

    async def check_connection(self) -> ConnectionCheck:
        """The file (or the folder it would be created in) is writable by this user."""
        return await asyncio.to_thread(writable_folder, self.path)

    def _append(self, bodies: list[str]) -> None:
        private_dir(self.path.parent)
        data = "".join(body.replace("\n", " ") + "\n" for body in bodies).encode("utf-8")
        with open(self.path, "ab+", opener=open_private) as fh:  # 0600: it holds cases
            if fh.tell() > 0:  # a crash mid-write may have left half a line: end it
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    data = b"\n" + data
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
