"""Cases, their lookup keys (replays, idempotency keys) and the sequences behind codes.

The pull feed is ordered by ``feed_pos``, taken from a counter under the intake lock in
the same transaction as the case: positions are handed out in commit order, so a reader
polling ``after=<cursor>`` never skips a case committed late by another replica.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.store import attachment_index
from gateway.store.engine import Tx

FEED_SCOPE = "feed"


@dataclass(frozen=True)
class CaseRow:
    id: int
    case_code: str
    feed_pos: int
    document: str


def next_value(tx: Tx, scope: str) -> int:
    """Atomically take the next number of ``scope`` (1, 2, …) inside this transaction."""
    row = tx.fetchone(
        "INSERT INTO sequences (scope, value) VALUES (?, 1) "
        "ON CONFLICT (scope) DO UPDATE SET value = sequences.value + 1 RETURNING value",
        (scope,),
    )
    return int(row[0])


def find_by_key(tx: Tx, scope: str, keys: list[str]) -> tuple[int, str] | None:
    """The case already filed under any of ``keys`` in ``scope``: (case id, case code)."""
    for key in keys:
        row = tx.fetchone(
            "SELECT c.id, c.case_code FROM dedup_keys k JOIN cases c ON c.id = k.case_id "
            "WHERE k.scope = ? AND k.key = ?",
            (scope, key),
        )
        if row:
            return int(row[0]), str(row[1])
    return None


def add_keys(tx: Tx, scope: str, keys: list[str], case_id: int) -> None:
    now = time.time()
    for key in keys:
        tx.execute(
            "INSERT INTO dedup_keys (scope, key, case_id, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (scope, key) DO NOTHING",
            (scope, key, case_id, now),
        )


def insert(
    tx: Tx, *, case_code: str, source: str, source_ref: str, channel: str, raw_id: int,
    document: str,
) -> CaseRow:
    now = time.time()
    feed_pos = next_value(tx, FEED_SCOPE)
    row = tx.fetchone(
        "INSERT INTO cases (case_code, source, source_ref, channel, raw_id, created_at, "
        "updated_at, feed_pos, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (case_code, source, source_ref, channel, raw_id, now, now, feed_pos, document),
    )
    attachment_index.record(tx, int(row[0]), document)
    return CaseRow(int(row[0]), case_code, feed_pos, document)


def update_document(tx: Tx, case_id: int, document: str) -> int:
    """Replace a case's document; it moves to the end of the pull feed."""
    feed_pos = next_value(tx, FEED_SCOPE)
    tx.execute(
        "UPDATE cases SET document = ?, updated_at = ?, feed_pos = ? WHERE id = ?",
        (document, time.time(), feed_pos, case_id),
    )
    attachment_index.record(tx, case_id, document)
    return feed_pos


def _row(row: Any) -> CaseRow:
    return CaseRow(int(row[0]), str(row[1]), int(row[2]), str(row[3]))


def get_by_code(tx: Tx, case_code: str) -> CaseRow | None:
    row = tx.fetchone(
        "SELECT id, case_code, feed_pos, document FROM cases WHERE case_code = ?", (case_code,)
    )
    return _row(row) if row else None


def get_by_id(tx: Tx, case_id: int) -> CaseRow | None:
    row = tx.fetchone(
        "SELECT id, case_code, feed_pos, document FROM cases WHERE id = ?", (case_id,)
    )
    return _row(row) if row else None


def feed_after(tx: Tx, cursor: int, limit: int) -> list[CaseRow]:
    rows = tx.fetchall(
        "SELECT id, case_code, feed_pos, document FROM cases WHERE feed_pos > ? "
        "ORDER BY feed_pos LIMIT ?",
        (cursor, limit),
    )
    return [_row(r) for r in rows]


def count(tx: Tx) -> int:
    return int(tx.fetchone("SELECT COUNT(*) FROM cases")[0])
