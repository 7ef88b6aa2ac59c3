"""Checkpoints of pulled sources, and leases so one replica at a time polls a source."""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.store.engine import Tx


def get(tx: Tx, source: str) -> Any:
    row = tx.fetchone("SELECT value FROM checkpoints WHERE source = ?", (source,))
    return json.loads(row[0]) if row else None


def put(tx: Tx, source: str, value: Any) -> None:
    tx.execute(
        "INSERT INTO checkpoints (source, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (source) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        (source, json.dumps(value, ensure_ascii=False), time.time()),
    )


def acquire_lease(tx: Tx, name: str, owner: str, ttl_s: float) -> bool:
    """Take or renew ``name`` for ``owner`` unless another owner holds an unexpired lease."""
    now = time.time()
    row = tx.fetchone(
        "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
        "expires_at = excluded.expires_at "
        "WHERE leases.owner = excluded.owner OR leases.expires_at < ? RETURNING owner",
        (name, owner, now + ttl_s, now),
    )
    return row is not None


def release_lease(tx: Tx, name: str, owner: str) -> None:
    tx.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))
