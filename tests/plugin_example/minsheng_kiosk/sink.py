"""The ``csv_file`` sink: one line per delivery (kind, case code, channel, subject).

A sink's whole contract: ``deliver`` a batch, answer one outcome per entry (``None``:
delivered; a ``RetriableSinkError``: the forwarder tries again later).
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from gateway.delivery.sinks.base import Outcome, Sink
from gateway.model.errors import RetriableSinkError
from gateway.store.outbox import Delivery


class CsvOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path


class CsvSink(Sink[CsvOptions]):
    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        path = self.options.path
        rows = [_row(d) for d in batch]
        try:
            await asyncio.to_thread(_append, path, rows)
        except OSError as exc:
            return [RetriableSinkError(f"cannot write {path}: {exc.strerror}") for _ in batch]
        return [None for _ in batch]


def _row(delivery: Delivery) -> list[str]:
    document = json.loads(delivery.body)
    return [delivery.kind, delivery.case_code or "", str(document.get("channel", "")),
            str(document.get("subject") or "")]


def _append(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
