"""Cases, their lookup keys (replays, idempotency keys) and the sequences behind codes.

The pull feed is ordered by ``feed_pos``. Its promise: a reader polling
``after=<cursor>`` never skips a committed case and never sees one twice (an update moves
the case to the end, on purpose). How positions keep it depends on the writers:

- one writer (SQLite): a counter row in the committing transaction; commits are serial,
  so positions are in commit order;
- several writers (PostgreSQL replicas): no shared counter, which would serialise them.
  A position is ``(transaction id - origin) * 65536 + base + n``, n counting the
  positions the transaction handed out; the feed serves only positions of transactions
  older than the oldest one still running (``pg_snapshot_xmin``), all of which have
  ended, so nothing can later commit behind a position a reader was given.
  ``origin`` (the transaction id of migration 12) and ``base`` (the last position a
  counter handed out before it), the one row of ``feed_origin``, continue those
  positions. docs/downstream.md explains the choice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.store import attachment_index
from gateway.store.engine import Tx

FEED_SCOPE = "feed"  # the counter of one writer
FEED_PER_TRANSACTION = 65536  # positions one transaction can hand out


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


def code_number(tx: Tx, scope: str) -> int:
    """The next case-code number of ``scope`` (region, day, channel): from the writer's
    blocks when there are several writers (gateway/store/numbers.py: gaps, no reuse),
    else from the counter in this transaction (no gaps)."""
    if tx.numbers is not None:
        return tx.numbers.take(scope)
    return next_value(tx, scope)


def _position_sql(xact_id: str) -> str:
    """SQL of the first position of the transaction with id ``xact_id`` (minus one)."""
    return f"SELECT ({xact_id} - xact_origin) * {FEED_PER_TRANSACTION} + base FROM feed_origin"


def feed_position(tx: Tx) -> int:
    """A new position at the end of the pull feed, inside this transaction."""
    if tx.dialect.xact_id is None:
        return next_value(tx, FEED_SCOPE)
    if tx.feed_base is None:
        row = tx.fetchone(_position_sql(tx.dialect.xact_id))
        tx.feed_base = int(row[0])
    tx.feed_ordinal += 1
    if tx.feed_ordinal >= FEED_PER_TRANSACTION:
        raise OverflowError("too many feed positions in one transaction")
    return tx.feed_base + tx.feed_ordinal


def start_feed_positions(tx: Tx) -> None:
    """Migration 12: with several writers, positions from now on follow transaction ids,
    above every position handed out so far."""
    if tx.dialect.xact_id is None:
        return
    tx.execute(f"INSERT INTO feed_origin (xact_origin, base) SELECT {tx.dialect.xact_id}, "
               "COALESCE(MAX(feed_pos), 0) FROM cases")


def find_by_key(tx: Tx, scope: str, keys: list[str]) -> tuple[int, str] | None:
    """The case already filed under any of ``keys`` in ``scope``: (case id, case code),
    the first key's case when several match. One statement for all keys."""
    if not keys:
        return None
    return first_filed(keys, tx.fetchall(by_key_sql(len(keys)), (scope, *keys)))


def by_key_sql(count: int) -> str:
    """The statement of ``find_by_key`` for ``count`` keys: rows of (key, case id, case
    code); parameters the scope, then the keys."""
    return ("SELECT k.key, c.id, c.case_code FROM dedup_keys k JOIN cases c ON c.id = k.case_id "
            f"WHERE k.scope = ? AND k.key IN ({', '.join('?' for _ in range(count))})")


def first_filed(keys: list[str], rows: list[Any]) -> tuple[int, str] | None:
    """Of ``by_key_sql``'s rows, the case of the first of ``keys`` that has one."""
    found = {str(r[0]): (int(r[1]), str(r[2])) for r in rows}
    return next((found[key] for key in keys if key in found), None)


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
    feed_pos = feed_position(tx)
    case_id = tx.insert_row(
        "cases", ("case_code", "source", "source_ref", "channel", "raw_id", "created_at",
                  "updated_at", "feed_pos", "document"),
        (case_code, source, source_ref, channel, raw_id, now, now, feed_pos, document))
    attachment_index.record(tx, case_id, document, new=True)
    return CaseRow(case_id, case_code, feed_pos, document)


def update_document(tx: Tx, case_id: int, document: str) -> int:
    """Replace a case's document; it moves to the end of the pull feed."""
    feed_pos = feed_position(tx)
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
    """Up to ``limit`` cases after ``cursor`` in feed order; with several writers only
    those below the horizon (positions no running transaction can still commit)."""
    horizon = ""
    if tx.dialect.oldest_xact_id is not None:
        horizon = f"AND feed_pos <= ({_position_sql(tx.dialect.oldest_xact_id)}) "
    rows = tx.fetchall(
        f"SELECT id, case_code, feed_pos, document FROM cases WHERE feed_pos > ? {horizon}"
        "ORDER BY feed_pos LIMIT ?",
        (cursor, limit),
    )
    return [_row(r) for r in rows]


def count(tx: Tx) -> int:
    return int(tx.fetchone("SELECT COUNT(*) FROM cases")[0])
