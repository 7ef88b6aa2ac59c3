"""Which case carries which attachment: the lookup behind ``GET /v1/attachments/{sha256}``.

The bytes are content-addressed (``gateway/model/attachments.py``) and a blob may exist
without any case (a record whose commit failed after its blobs were kept). The route
serves only attachments of cases, so it needs "which case lists this digest" without
reading every case document: one row per (digest, case), with the name and media type
recorded in that case, written in the same transaction as the case document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.store.engine import Tx

BACKFILL_CHUNK = 500  # case documents read per statement when an old store is indexed


@dataclass(frozen=True)
class IndexedAttachment:
    """An attachment as a case records it."""

    sha256: str
    file_name: str
    media_type: str
    size: int


def _listed(document: str) -> list[IndexedAttachment]:
    """The attachments a case document lists (none if it lists none or is not a case)."""
    if '"sha256"' not in document:  # most cases carry no attachment: skip the parse
        return []
    parsed: Any = json.loads(document)
    items = parsed.get("attachments") if isinstance(parsed, dict) else None
    found = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("sha256"), str):
            found.append(IndexedAttachment(
                item["sha256"], str(item.get("file_name") or "attachment"),
                str(item.get("media_type") or "application/octet-stream"),
                int(item.get("size") or 0),
            ))
    return found


def record(tx: Tx, case_id: int, document: str, *, new: bool = False) -> None:
    """Index the attachments of ``document`` under ``case_id``, replacing what an earlier
    version of the case listed (an update may add or drop attachments). A ``new`` case
    has nothing listed yet: no statement to delete, which also lets a batch's inserts go
    as one statement per kind (gateway/store/coalesce.py)."""
    if not new:
        tx.execute("DELETE FROM case_attachments WHERE case_id = ?", (case_id,))
    seen: set[str] = set()
    for item in _listed(document):
        if item.sha256 in seen:
            continue
        seen.add(item.sha256)
        tx.execute(
            "INSERT INTO case_attachments (sha256, case_id, file_name, media_type, size) "
            "VALUES (?, ?, ?, ?, ?)",
            (item.sha256, case_id, item.file_name, item.media_type, item.size),
        )


def find(tx: Tx, sha256: str) -> IndexedAttachment | None:
    """How the earliest case still stored that lists ``sha256`` recorded it; None when no
    case lists it (unknown or orphaned)."""
    row = tx.fetchone(
        "SELECT a.file_name, a.media_type, a.size FROM case_attachments a "
        "JOIN cases c ON c.id = a.case_id WHERE a.sha256 = ? ORDER BY a.case_id LIMIT 1",
        (sha256,),
    )
    if row is None:
        return None
    return IndexedAttachment(sha256, str(row[0]), str(row[1]), int(row[2]))


def backfill(tx: Tx) -> None:
    """Index the cases stored before the index existed, in chunks of documents."""
    last = 0
    while True:
        rows = tx.fetchall(
            "SELECT id, document FROM cases WHERE id > ? ORDER BY id LIMIT ?",
            (last, BACKFILL_CHUNK),
        )
        for case_id, document in rows:
            record(tx, int(case_id), str(document))
        if len(rows) < BACKFILL_CHUNK:
            return
        last = int(rows[-1][0])
