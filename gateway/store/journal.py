"""The raw journal: every record an adapter hands over, kept as received."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.model.errors import encodable
from gateway.model.schema import RawRecord
from gateway.store.engine import Tx

# What became of a raw record. SUPERSEDED: a quarantined record taken again by its
# source's own flow, which journaled it anew (the detail names the new row).
# ERASED: a replay of a submission erased at its person's request, journaled without
# its content (gateway/store/erasure.py).
ACCEPTED, REPLAY, REJECTED, QUARANTINED, FILTERED, SUPERSEDED, ERASED = (
    "accepted", "replay", "rejected", "quarantined", "filtered", "superseded", "erased",
)


@dataclass(frozen=True)
class JournalEntry:
    id: int
    record: RawRecord
    status: str
    case_id: int | None
    detail: Any


_COLUMNS = (
    "id, source, channel, source_ref, received_at, content_type, metadata, payload, "
    "idempotency_key, status, case_id, detail"
)


def insert_raw(
    tx: Tx, raw: RawRecord, status: str, detail: Any = None, case_id: int | None = None
) -> int:
    """Journal ``raw``. ``case_id`` is set for replays; an accepted record is linked from
    its case (``cases.raw_id``) instead, saving an update per request. Text a caller
    chose (a header, a key) may hold lone surrogates, which no UTF-8 encoder takes: they
    are kept escaped (``\\udcff``), so the record is journaled whatever it holds."""
    values = (
        raw.source, raw.channel, encodable(raw.source_ref), raw.received_at.timestamp(),
        encodable(raw.content_type), _json(raw.metadata), raw.payload,
        None if raw.idempotency_key is None else encodable(raw.idempotency_key), status,
        _json(detail), case_id,
    )
    return tx.insert_row("raw_records", _RAW_COLUMNS, values)


_RAW_COLUMNS = ("source", "channel", "source_ref", "received_at", "content_type", "metadata",
                "payload", "idempotency_key", "status", "detail", "case_id")


def _json(value: Any) -> str | None:
    return None if value is None else encodable(json.dumps(value, ensure_ascii=False))


def set_outcome(
    tx: Tx, raw_id: int, status: str, case_id: int | None = None, detail: Any = None
) -> None:
    tx.execute(
        "UPDATE raw_records SET status = ?, case_id = ?, detail = ? WHERE id = ?",
        (status, case_id, _json(detail), raw_id),
    )


def _entry(row: Any) -> JournalEntry:
    record = RawRecord(
        source=row[1], channel=row[2], source_ref=row[3],
        received_at=datetime.fromtimestamp(row[4], UTC), content_type=row[5],
        metadata=json.loads(row[6]), payload=bytes(row[7]), idempotency_key=row[8],
    )
    detail = json.loads(row[11]) if row[11] else None
    return JournalEntry(int(row[0]), record, row[9], row[10], detail)


def get(tx: Tx, raw_id: int) -> JournalEntry | None:
    row = tx.fetchone(f"SELECT {_COLUMNS} FROM raw_records WHERE id = ?", (raw_id,))
    return _entry(row) if row else None


def latest(tx: Tx, status: str, limit: int = 20) -> list[JournalEntry]:
    rows = tx.fetchall(
        f"SELECT {_COLUMNS} FROM raw_records WHERE status = ? ORDER BY id DESC LIMIT ?",
        (status, limit),
    )
    return [_entry(r) for r in rows]


def count_by_status(tx: Tx) -> dict[str, int]:
    rows = tx.fetchall("SELECT status, COUNT(*) FROM raw_records GROUP BY status")
    return {r[0]: int(r[1]) for r in rows}


_REFS_PER_QUERY = 200  # source refs per IN list: well under every engine's bind limit


def refs_journaled(tx: Tx, source: str, refs: list[str]) -> set[str]:
    """Which of ``refs`` the source has journaled already, whatever became of them (a
    pulled adapter skips those without fetching them again)."""
    found: set[str] = set()
    for start in range(0, len(refs), _REFS_PER_QUERY):
        chunk = refs[start:start + _REFS_PER_QUERY]
        rows = tx.fetchall(
            "SELECT DISTINCT source_ref FROM raw_records WHERE source = ? AND source_ref IN "
            f"({', '.join('?' for _ in chunk)})", (source, *chunk))
        found.update(str(r[0]) for r in rows)
    return found
