"""Items that could not become cases and wait for operations: kept, listed, retried."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from gateway.store.engine import Tx


@dataclass(frozen=True)
class QuarantineEntry:
    id: int
    source: str
    raw_id: int | None
    reason: str
    detail: Any
    created_at: float


def add(tx: Tx, source: str, raw_id: int | None, reason: str, detail: Any = None) -> int:
    row = tx.fetchone(
        "INSERT INTO quarantine (source, raw_id, reason, detail, created_at) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (source, raw_id, reason, json.dumps(detail, ensure_ascii=False), time.time()),
    )
    return int(row[0])


def detail_values(tx: Tx, source: str, reason: str, key: str) -> set[str]:
    """``detail[key]`` of every entry of ``source`` quarantined for ``reason``."""
    rows = tx.fetchall("SELECT detail FROM quarantine WHERE source = ? AND reason = ?",
                       (source, reason))
    return {str(json.loads(r[0]).get(key)) for r in rows if r[0]}


def list_open(tx: Tx, ids: list[int] | None = None, limit: int = 1000) -> list[QuarantineEntry]:
    """Open entries, oldest first: all of them (up to ``limit``) or the ``ids`` given."""
    where, params = "resolved_at IS NULL", []
    if ids is not None:
        if not ids:
            return []
        where += f" AND id IN ({', '.join('?' for _ in ids)})"
        params = list(ids)
    rows = tx.fetchall(
        "SELECT id, source, raw_id, reason, detail, created_at FROM quarantine "
        f"WHERE {where} ORDER BY id LIMIT ?",
        (*params, limit),
    )
    return [
        QuarantineEntry(int(r[0]), r[1], r[2], r[3], json.loads(r[4]) if r[4] else None, r[5])
        for r in rows
    ]


def update(tx: Tx, entry_id: int, reason: str, detail: Any) -> None:
    """A retry failed again: keep one entry, with the latest reason."""
    tx.execute(
        "UPDATE quarantine SET reason = ?, detail = ? WHERE id = ?",
        (reason, json.dumps(detail, ensure_ascii=False), entry_id),
    )


def resolve(tx: Tx, entry_id: int, resolution: str) -> None:
    tx.execute(
        "UPDATE quarantine SET resolved_at = ?, resolution = ? WHERE id = ?",
        (time.time(), resolution, entry_id),
    )


@dataclass(frozen=True)
class OpenSummary:
    """How many entries wait and how long the oldest has (seconds; 0.0 when none)."""

    open: int
    oldest_age_s: float


def count_open(tx: Tx) -> int:
    return open_summary(tx).open


def open_summary(tx: Tx) -> OpenSummary:
    """The open entries' count and oldest age: quarantine is never purged, so its age is
    what tells operations that personal data is being held (issue 18)."""
    row = tx.fetchone(
        "SELECT COUNT(*), MIN(created_at) FROM quarantine WHERE resolved_at IS NULL"
    )
    n, oldest = (int(row[0]), row[1]) if row is not None else (0, None)
    age = round(time.time() - float(oldest), 3) if oldest is not None else 0.0
    return OpenSummary(n, age)
