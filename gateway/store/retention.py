"""Retention by purpose: what the purge job removes, a chunk per transaction.

Two kinds of data have a period (``gateway/support/retention_config.py``):

- **delivered cases**: once every sink confirmed a case (no outbox entry of it pending
  or dead, the last delivery older than the period; optionally the case platform said
  ``accepted``), its raw records lose their payload, its document loses its personal
  fields (``gateway/model/personal_fields.py``), its attachments leave the index (the
  files go when no other case lists them: ``attachment_files``), its call loses the
  caller number and the joined call fields, its status history loses the reply text.
  The case row stays, marked ``stripped_at``: dedup, the look-up by code and the
  metrics still find it.
- **refused raw records** (rejected, filtered; no case, no quarantine entry): the payload
  and metadata go; the row stays as a stub (source, reference, time, status, the
  reasons by field name) so counts stay right and a pulled source does not fetch the
  same item again.
- **calls without a case** (a missed call counted for the KPIs, notes whose call never
  came): after their last event, the caller number, the joined fields and the payloads
  of the call's raw events go, as for a delivered case's call; the times, disposition
  and agent stay for the KPIs. The row is marked ``stripped_at`` (a later event of the
  call unmarks it: what it brought is kept for the period again).

Quarantine entries and dead letters have no period: they are never removed silently.
Every statement is written once for both engines; each chunk is its own transaction, so
a crash leaves every record before or after, never half-purged.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.model.personal_fields import strip_document_text
from gateway.store import attachment_files
from gateway.store.engine import Tx


class PurgeKind(StrEnum):
    DELIVERED_CASE = "delivered_case"
    REFUSED_RAW = "refused_raw"
    CASELESS_CALL = "caseless_call"


class KeptKind(StrEnum):
    """Kept until someone acts: shown with their age, never purged."""

    QUARANTINE = "quarantine"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Due:
    """What a purge at ``now`` would take of one kind: how many, and the oldest time."""

    kind: PurgeKind | KeptKind
    count: int
    oldest: float | None


def _delivered_where(wait_for_accepted: bool) -> str:
    where = ("c.stripped_at IS NULL AND c.updated_at < ? AND NOT EXISTS (SELECT 1 FROM "
             "outbox o WHERE o.case_id = c.id AND (o.state <> 'delivered' OR "
             "o.finished_at >= ?))")
    if wait_for_accepted:
        where += (" AND EXISTS (SELECT 1 FROM case_statuses s WHERE s.case_id = c.id "
                  "AND s.status = 'accepted')")
    return where


_REFUSED_WHERE = (
    "r.status IN ('rejected', 'filtered') AND r.case_id IS NULL AND r.received_at < ? "
    "AND LENGTH(r.payload) > 0 AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.raw_id = r.id)"
)


_CASELESS_CALL_WHERE = "case_id IS NULL AND stripped_at IS NULL AND updated_at < ?"


def due(tx: Tx, delivered_before: float, refused_before: float,
        wait_for_accepted: bool, calls_before: float) -> list[Due]:
    """Counts and oldest times of what the next purge takes, and of what is kept."""
    found = []
    row = tx.fetchone(f"SELECT COUNT(*), MIN(c.updated_at) FROM cases c WHERE "
                      f"{_delivered_where(wait_for_accepted)}",
                      (delivered_before, delivered_before))
    found.append(Due(PurgeKind.DELIVERED_CASE, int(row[0]), row[1]))
    row = tx.fetchone(f"SELECT COUNT(*), MIN(r.received_at) FROM raw_records r WHERE "
                      f"{_REFUSED_WHERE}", (refused_before,))
    found.append(Due(PurgeKind.REFUSED_RAW, int(row[0]), row[1]))
    row = tx.fetchone(f"SELECT COUNT(*), MIN(updated_at) FROM calls WHERE "
                      f"{_CASELESS_CALL_WHERE}", (calls_before,))
    found.append(Due(PurgeKind.CASELESS_CALL, int(row[0]), row[1]))
    row = tx.fetchone("SELECT COUNT(*), MIN(created_at) FROM quarantine "
                      "WHERE resolved_at IS NULL")
    found.append(Due(KeptKind.QUARANTINE, int(row[0]), row[1]))
    row = tx.fetchone("SELECT COUNT(*), MIN(finished_at) FROM outbox WHERE state = 'dead'")
    found.append(Due(KeptKind.DEAD_LETTER, int(row[0]), row[1]))
    return found


def _marks(values: list[Any]) -> str:
    return ", ".join("?" for _ in values)


def strip_call_state(text: str | None) -> str | None:
    """A call's joined state without the fields it was joined from (caller, notes): the
    state's shape stays, so a late event of the call still parses."""
    if text is None:
        return None
    try:
        state = json.loads(text)
    except ValueError:
        return "{}"
    if isinstance(state, dict):
        for key in ("fields", "ranks"):
            if key in state:
                state[key] = {}
    return json.dumps(state, ensure_ascii=False, sort_keys=True)


def strip_cases(tx: Tx, case_ids: list[int], now: float) -> int:
    """Remove the personal parts of these cases (see the module docstring); returns how
    many attachment files were queued for deletion."""
    if not case_ids:
        return 0
    marks = _marks(case_ids)
    for case_id, document in tx.fetchall(
            f"SELECT id, document FROM cases WHERE id IN ({marks})", case_ids):
        tx.execute("UPDATE cases SET document = ?, stripped_at = ? WHERE id = ?",
                   (strip_document_text(str(document)), now, case_id))
    tx.execute(f"UPDATE raw_records SET payload = ?, metadata = '{{}}', idempotency_key = NULL "
               f"WHERE case_id IN ({marks}) OR id IN (SELECT raw_id FROM cases "
               f"WHERE id IN ({marks}))", (b"", *case_ids, *case_ids))
    _strip_calls(tx, tx.fetchall(
        f"SELECT id, state, source, call_id FROM calls WHERE case_id IN ({marks})", case_ids),
        now)
    tx.execute(f"UPDATE case_statuses SET text = NULL WHERE case_id IN ({marks})", case_ids)
    digests = [str(r[0]) for r in tx.fetchall(
        f"SELECT sha256 FROM case_attachments WHERE case_id IN ({marks})", case_ids)]
    tx.execute(f"DELETE FROM case_attachments WHERE case_id IN ({marks})", case_ids)
    return attachment_files.queue_unused(tx, digests)


def _strip_calls(tx: Tx, calls: list[Any], now: float) -> None:
    """Remove the caller and the joined fields of these calls (rows of id, state, source,
    call id) and empty their raw events."""
    for call_id, state, source, ref in calls:
        tx.execute("UPDATE calls SET caller = NULL, state = ?, stripped_at = ? WHERE id = ?",
                   (strip_call_state(state), now, call_id))
        # The call's own records (journaled under its call id, before it had a case).
        tx.execute("UPDATE raw_records SET payload = ?, metadata = '{}', "
                   "idempotency_key = NULL WHERE source = ? AND source_ref = ?",
                   (b"", source, ref))


def purge_caseless_calls_chunk(tx: Tx, before: float, limit: int) -> int:
    """Strip up to ``limit`` calls without a case whose last event came before
    ``before``, oldest first; how many."""
    calls = tx.fetchall(f"SELECT id, state, source, call_id FROM calls WHERE "
                        f"{_CASELESS_CALL_WHERE} ORDER BY updated_at LIMIT ?", (before, limit))
    _strip_calls(tx, calls, time.time())
    return len(calls)


def purge_delivered_chunk(tx: Tx, before: float, wait_for_accepted: bool,
                          limit: int) -> tuple[int, int]:
    """Strip up to ``limit`` delivered cases, oldest first: (cases, files queued)."""
    rows = tx.fetchall(
        f"SELECT c.id FROM cases c WHERE {_delivered_where(wait_for_accepted)} "
        f"ORDER BY c.updated_at LIMIT ?", (before, before, limit))
    ids = [int(r[0]) for r in rows]
    return len(ids), strip_cases(tx, ids, time.time())


def purge_refused_chunk(tx: Tx, before: float, limit: int) -> int:
    """Empty up to ``limit`` refused raw records received before ``before``; how many."""
    rows = tx.fetchall(f"SELECT r.id FROM raw_records r WHERE {_REFUSED_WHERE} "
                       "ORDER BY r.id LIMIT ?", (before, limit))
    ids = [int(r[0]) for r in rows]
    if ids:
        tx.execute(f"UPDATE raw_records SET payload = ?, metadata = '{{}}', "
                   f"idempotency_key = NULL WHERE id IN ({_marks(ids)})", (b"", *ids))
    return len(ids)
