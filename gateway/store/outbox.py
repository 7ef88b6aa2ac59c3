"""The outbox: one entry per case (or update, or event) per sink, delivered at least once.

Entries are claimed in order of arrival with a lease (and ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), so replicas share the work without delivering the same entry twice at once.
The retry schedule lives here, so it survives restarts.

Delivered entries are deleted after the retention (``purge_delivered``, run by the
forwarder); pending entries and dead letters are never. How many were deleted is added
to a tally per sink in ``sequences``, so the delivered figure of ``stats`` (kept plus
deleted) never goes down.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from gateway.store.engine import Tx

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
PURGE_CHUNK = 1000  # most entries one retention statement deletes (one transaction each)
PURGED_SCOPE = "outbox:purged:"  # + sink: the ``sequences`` row tallying its deleted entries


# What an entry carries to a sink: a new case, an update of a case (a late call record),
# an event (a hot topic), or the erasure of a case the sink received (gateway/store/
# erasure.py: the payload names the case code); http sinks send it as X-Minsheng-Kind.
DeliveryKind = Literal["case", "update", "event", "erasure"]


@dataclass(frozen=True)
class Delivery:
    """One thing to hand to one sink. ``body`` is the JSON text to deliver."""

    outbox_id: int
    sink: str
    kind: DeliveryKind
    case_code: str | None
    body: str
    attempts: int
    created_at: float


@dataclass(frozen=True)
class DeadLetter:
    outbox_id: int
    sink: str
    kind: DeliveryKind
    case_code: str | None
    attempts: int
    last_error: str | None
    created_at: float
    finished_at: float | None


def enqueue(
    tx: Tx, sinks: list[str], case_id: int | None, kind: DeliveryKind = "case",
    payload: str | None = None,
) -> None:
    now = time.time()
    for sink in sinks:
        tx.execute(
            "INSERT INTO outbox (sink, case_id, kind, payload, state, created_at, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sink, case_id, kind, payload, PENDING, now, now),
        )


def claim(tx: Tx, sink: str, limit: int, lease_s: float, owner: str) -> list[Delivery]:
    """Lease up to ``limit`` due entries of ``sink``, oldest first. One statement, the
    case's code and document read in its ``RETURNING``: on PostgreSQL one wait for the
    server per claim, inside the writer's batch (it was two: the lease, then the cases)."""
    now = time.time()
    rows = tx.fetchall(
        "UPDATE outbox SET lease_until = ?, lease_owner = ? WHERE id IN ("
        "SELECT id FROM outbox WHERE sink = ? AND state = 'pending' AND next_attempt_at <= ? "
        f"AND lease_until <= ? ORDER BY id LIMIT ?{tx.dialect.skip_locked}) "
        "RETURNING id, kind, payload, attempts, created_at, "
        "(SELECT case_code FROM cases WHERE cases.id = outbox.case_id), "
        "(SELECT document FROM cases WHERE cases.id = outbox.case_id)",
        (now + lease_s, owner, sink, now, now, limit),
    )
    deliveries = []
    for oid, kind, payload, attempts, created, code, doc in sorted(rows, key=lambda r: int(r[0])):
        if kind == "erasure" and payload:  # the case is gone: its code is in the payload
            code = json.loads(payload).get("case_code")
        deliveries.append(Delivery(int(oid), sink, kind, code, payload or doc or "",
                                   int(attempts), float(created)))
    return deliveries


def release_leases(tx: Tx, owner: str | None = None) -> None:
    """Give up leases: one owner's (clean shutdown), or all (SQLite start: one process)."""
    if owner is None:
        tx.execute("UPDATE outbox SET lease_until = 0 WHERE state = 'pending'")
    else:
        tx.execute(
            "UPDATE outbox SET lease_until = 0 WHERE state = 'pending' AND lease_owner = ?",
            (owner,),
        )


def mark_delivered(tx: Tx, outbox_ids: list[int]) -> None:
    now = time.time()
    for start in range(0, len(outbox_ids), 500):
        chunk = outbox_ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        tx.execute(
            "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, finished_at = ?, "
            f"last_error = NULL WHERE id IN ({marks})",
            (now, *chunk),
        )


def reschedule(tx: Tx, outbox_id: int, next_attempt_at: float, error: str) -> None:
    tx.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, lease_until = 0, "
        "last_error = ? WHERE id = ?",
        (next_attempt_at, error[:2000], outbox_id),
    )


def dead_letter(tx: Tx, outbox_id: int, error: str) -> None:
    tx.execute(
        "UPDATE outbox SET state = 'dead', attempts = attempts + 1, finished_at = ?, "
        "lease_until = 0, last_error = ? WHERE id = ?",
        (time.time(), error[:2000], outbox_id),
    )


def list_dead(tx: Tx, limit: int = 1000) -> list[DeadLetter]:
    rows = tx.fetchall(
        "SELECT o.id, o.sink, o.kind, c.case_code, o.attempts, o.last_error, o.created_at, "
        "o.finished_at FROM outbox o LEFT JOIN cases c ON c.id = o.case_id "
        "WHERE o.state = 'dead' ORDER BY o.id LIMIT ?",
        (limit,),
    )
    return [DeadLetter(int(r[0]), r[1], r[2], r[3], int(r[4]), r[5], r[6], r[7]) for r in rows]


def replay_dead(tx: Tx, outbox_ids: list[int] | None) -> int:
    """Put dead letters (all, or the given ones) back in line; returns how many."""
    now = time.time()
    if outbox_ids is None:
        rows = tx.fetchall("SELECT id FROM outbox WHERE state = 'dead'")
        outbox_ids = [int(r[0]) for r in rows]
    changed = 0
    for oid in outbox_ids:
        row = tx.fetchone(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
            "lease_until = 0, finished_at = NULL, created_at = ? "
            "WHERE id = ? AND state = 'dead' RETURNING id",
            (now, now, oid),
        )
        changed += row is not None
    return changed


def purge_delivered(tx: Tx, before: float, limit: int = PURGE_CHUNK) -> dict[str, int]:
    """Delete up to ``limit`` entries delivered before ``before`` (epoch seconds), the
    oldest deliveries first; return how many per sink.

    Only ``delivered`` entries go (found by the partial index ``outbox_delivered``). The
    entry with the highest id stays, whatever its state: SQLite hands out the highest id
    plus one, so ids are never used twice (the ``http`` sink's idempotency keys of updates
    and events carry the id). Each sink's count is added to its tally in the same
    transaction. On PostgreSQL, entries another replica is deleting are skipped.
    """
    rows = tx.fetchall(
        "DELETE FROM outbox WHERE state = 'delivered' AND id IN ("
        "SELECT id FROM outbox WHERE state = 'delivered' AND finished_at < ? "
        "AND id < (SELECT MAX(id) FROM outbox) "
        f"ORDER BY finished_at LIMIT ?{tx.dialect.skip_locked}) RETURNING sink",
        (before, limit),
    )
    counts = Counter(str(r[0]) for r in rows)
    for sink, n in sorted(counts.items()):  # one order on every replica: no deadlock
        tx.execute(
            "INSERT INTO sequences (scope, value) VALUES (?, ?) ON CONFLICT (scope) "
            "DO UPDATE SET value = sequences.value + excluded.value",
            (PURGED_SCOPE + sink, n),
        )
    return dict(counts)


def stats(tx: Tx) -> dict[str, dict[str, Any]]:
    """Per sink: pending and dead counts with the age in seconds of the oldest of each
    (since the entry was created: how long the case has waited, or been held), and the
    delivered count. Dead letters are never deleted, so their age is what shows an
    operator that personal data is being held (issue 18: never deleted silently).

    ``delivered`` counts every entry ever delivered: those kept plus those deleted by
    ``purge_delivered``. One statement reads both, so it sees a purge whole or not at all.
    """
    now = time.time()
    result: dict[str, dict[str, Any]] = {}
    for sink, state, n, oldest in tx.fetchall(
        "SELECT sink, state, COUNT(*), MIN(created_at) FROM outbox GROUP BY sink, state "
        "UNION ALL SELECT scope, 'purged', value, NULL FROM sequences WHERE scope LIKE ?",
        (PURGED_SCOPE + "%",),
    ):
        if state == "purged":
            sink = str(sink).removeprefix(PURGED_SCOPE)
        entry = result.setdefault(
            sink, {"pending": 0, "delivered": 0, "dead": 0, "oldest_pending_age_s": 0.0,
                   "oldest_dead_age_s": 0.0}
        )
        if state == "purged":
            entry[DELIVERED] += int(n)
        else:
            entry[state] = entry.get(state, 0) + int(n)
        if state in (PENDING, DEAD) and oldest is not None:
            entry[f"oldest_{state}_age_s"] = round(now - float(oldest), 3)
    return result
