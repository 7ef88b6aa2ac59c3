"""Phone calls: one row per (source, call id), the joined state of its events.

The columns beside ``state`` (the joined ``CallState`` as JSON) are what operations
query: the KPIs by ``offered_at``, and answered calls still waiting for their notes by
``due_at``. Times are epoch seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.intake.ports import Tx


@dataclass(frozen=True)
class CallRow:
    id: int
    call_id: str
    case_id: int | None
    case_kind: str | None
    events: int
    state: str


@dataclass(frozen=True)
class CallSummary:
    """The queryable columns of a call, derived from its state."""

    direction: str
    caller: str | None
    agent: str | None
    status: str  # ringing | answered | ended | missed
    disposition: str | None
    offered_at: float
    answered_at: float | None
    ended_at: float | None
    ring_seconds: int | None
    talk_seconds: int | None
    has_notes: bool
    waiting_for: str | None  # notes | call
    due_at: float | None


@dataclass(frozen=True)
class WaitingCall:
    """A call whose case still waits for something (notes, or the call's own record)."""

    source: str
    call_id: str
    caller: str | None
    agent: str | None
    status: str
    offered_at: float
    waiting_for: str
    due_at: float


@dataclass(frozen=True)
class KpiRow:
    direction: str
    status: str
    disposition: str | None
    ring_seconds: int | None
    has_notes: bool
    case_kind: str | None
    waiting_for: str | None
    due_at: float | None


def get(tx: Tx, source: str, call_id: str) -> CallRow | None:
    row = tx.fetchone(
        "SELECT id, call_id, case_id, case_kind, events, state FROM calls "
        "WHERE source = ? AND call_id = ?",
        (source, call_id),
    )
    if row is None:
        return None
    case_id = int(row[2]) if row[2] is not None else None
    return CallRow(int(row[0]), str(row[1]), case_id, row[3], int(row[4]), str(row[5]))


_SUMMARY = ("direction, caller, agent, status, disposition, offered_at, answered_at, "
            "ended_at, ring_seconds, talk_seconds, has_notes, waiting_for, due_at")


def _summary_values(s: CallSummary) -> tuple[Any, ...]:
    return (s.direction, s.caller, s.agent, s.status, s.disposition, s.offered_at,
            s.answered_at, s.ended_at, s.ring_seconds, s.talk_seconds, int(s.has_notes),
            s.waiting_for, s.due_at)


def insert(tx: Tx, source: str, call_id: str, summary: CallSummary, state: str,
           case_id: int | None, case_kind: str | None) -> int:
    now = time.time()
    row = tx.fetchone(
        f"INSERT INTO calls (source, call_id, {_SUMMARY}, case_id, case_kind, events, "
        "created_at, updated_at, state) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?) RETURNING id",
        (source, call_id, *_summary_values(summary), case_id, case_kind, now, now, state),
    )
    return int(row[0])


def update(tx: Tx, row_id: int, summary: CallSummary, state: str, case_id: int | None,
           case_kind: str | None) -> None:
    assignments = ", ".join(f"{c.strip()} = ?" for c in _SUMMARY.split(","))
    tx.execute(
        f"UPDATE calls SET {assignments}, case_id = ?, case_kind = ?, events = events + 1, "
        "updated_at = ?, state = ?, stripped_at = NULL WHERE id = ?",
        (*_summary_values(summary), case_id, case_kind, time.time(), state, row_id),
    )


def waiting(tx: Tx, *, overdue_at: float | None = None, source: str | None = None,
            limit: int = 500) -> list[WaitingCall]:
    """Calls waiting for notes (or for their call record), the oldest deadline first;
    with ``overdue_at``, only those whose deadline has passed by then."""
    sql = ("SELECT source, call_id, caller, agent, status, offered_at, waiting_for, due_at "
           "FROM calls WHERE due_at IS NOT NULL")
    params: list[Any] = []
    if overdue_at is not None:
        sql += " AND due_at <= ?"
        params.append(overdue_at)
    if source is not None:
        sql += " AND source = ?"
        params.append(source)
    rows = tx.fetchall(sql + " ORDER BY due_at, id LIMIT ?", (*params, limit))
    return [WaitingCall(str(r[0]), str(r[1]), r[2], r[3], str(r[4]), float(r[5]), str(r[6]),
                        float(r[7])) for r in rows]


def count_overdue(tx: Tx, now: float, source: str | None = None) -> int:
    sql = "SELECT COUNT(*) FROM calls WHERE due_at <= ?"
    params: list[Any] = [now]
    if source is not None:
        sql += " AND source = ?"
        params.append(source)
    return int(tx.fetchone(sql, params)[0])


def kpi_rows(tx: Tx, since: float, until: float, source: str | None = None) -> list[KpiRow]:
    """The calls offered in [since, until)."""
    sql = ("SELECT direction, status, disposition, ring_seconds, has_notes, case_kind, "
           "waiting_for, due_at FROM calls WHERE offered_at >= ? AND offered_at < ?")
    params: list[Any] = [since, until]
    if source is not None:
        sql += " AND source = ?"
        params.append(source)
    return [KpiRow(str(r[0]), str(r[1]), r[2], None if r[3] is None else int(r[3]), bool(r[4]),
                   r[5], r[6], None if r[7] is None else float(r[7]))
            for r in tx.fetchall(sql, params)]


def count_abandoned(tx: Tx) -> int:
    """Inbound calls the caller hung up before an answer, ever (a monotonic total)."""
    row = tx.fetchone(
        "SELECT COUNT(*) FROM calls WHERE direction = 'inbound' AND status = 'missed' "
        "AND disposition = 'abandoned'"
    )
    return int(row[0])
