"""The access log: who read which case, attachment or queue, and when (issue 18, item 5).

The Cybersecurity Law (Art. 21) asks for access logs kept at least six months, PIPL
Art. 55–57 for records of processing. One row per read *request* (the pull feed's page
of cases is one row naming its feed range, not one per case), written by the store's
group-commit writer after the read and before the answer, so a read that was answered
was logged.

A row never holds personal fields: ``actor`` is a token's name (``api``, ``ops``), the
word ``public`` for the unauthenticated Open311 read, or ``os:<user>`` for the command
line; ``target`` a case code, an attachment's sha256, a feed range or a queue name;
``detail`` counts and parameters the caller chooses (never a phone, name or text).

Rows older than ``privacy.audit_retention_days`` (at least 180) are deleted a chunk at
a time by ``purge`` (the gateway's daily retention loop, gateway/ops/audit_retention.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.model.audit_action import ACTOR_API, ACTOR_OPS, ACTOR_PUBLIC, AuditAction
from gateway.store.engine import Tx

__all__ = ["ACTOR_API", "ACTOR_OPS", "ACTOR_PUBLIC", "AuditAction", "AuditEntry", "entries",
           "purge", "record"]

PURGE_CHUNK = 1000  # rows one purge statement deletes (one transaction each)
LIST_LIMIT = 10_000  # rows ``entries`` returns at most

@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
                "target": self.target, "detail": self.detail}


def record(tx: Tx, actor: str, action: AuditAction, target: str,
           detail: Mapping[str, Any] | None = None) -> None:
    """Append one entry. ``detail``: counts and parameters only, never personal fields."""
    text = json.dumps(dict(detail), ensure_ascii=False, sort_keys=True) if detail else None
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (time.time(), actor, action.value, target, text),
    )


def entries(tx: Tx, since: float, actor: str | None = None, action: str | None = None,
            limit: int = LIST_LIMIT) -> list[AuditEntry]:
    """Entries at or after ``since`` (epoch seconds), oldest first, optionally of one
    actor and/or one action."""
    where: list[str] = ["at >= ?"]
    params: list[Any] = [since]
    if actor is not None:
        where.append("actor = ?")
        params.append(actor)
    if action is not None:
        where.append("action = ?")
        params.append(action)
    rows = tx.fetchall(
        "SELECT id, at, actor, action, target, detail FROM audit_log WHERE "
        + " AND ".join(where) + " ORDER BY at, id LIMIT ?", [*params, limit])
    return [_entry(r) for r in rows]


def _entry(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(int(row[0]), float(row[1]), str(row[2]), str(row[3]), str(row[4]),
                      json.loads(row[5]) if row[5] else {})


def purge(tx: Tx, before: float, limit: int = PURGE_CHUNK) -> int:
    """Delete up to ``limit`` entries older than ``before``, the oldest first; returns
    how many. On PostgreSQL, rows another replica is deleting are skipped."""
    rows = tx.fetchall(
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? "
        f"ORDER BY at LIMIT ?{tx.dialect.skip_locked}) RETURNING id",
        (before, limit),
    )
    return len(rows)
