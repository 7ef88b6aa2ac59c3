"""What ``minsheng subject export`` writes: the rows of one person's cases, raw records,
calls, status history and quarantine entries, read in one transaction
(gateway/store/subject.py finds them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gateway.store.engine import Tx
from gateway.store.erasure import Target

_CHUNK = 400


@dataclass
class Export:
    """The JSON documents of the zip, the raw payloads by raw id, and the attachment
    files (digest, file name) to copy from the attachment store."""

    documents: dict[str, Any] = field(default_factory=dict)
    payloads: dict[int, bytes] = field(default_factory=dict)
    attachments: list[tuple[str, str]] = field(default_factory=list)


def _rows(tx: Tx, sql: str, ids: list[int]) -> list[dict[str, Any]]:
    """Rows of ``sql`` (with ``{marks}``) for ``ids`` as dicts, chunk by chunk."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        cursor = tx.conn.execute(
            tx.dialect.translate(sql.format(marks=", ".join("?" for _ in chunk))), chunk)
        names = [d[0] for d in cursor.description]
        found += [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return found


def gather(tx: Tx, target: Target) -> Export:
    out = Export()
    cases = _rows(tx, "SELECT id, case_code, source, channel, created_at, updated_at, "
                  "document FROM cases WHERE id IN ({marks}) ORDER BY id", target.case_ids)
    for case in cases:
        case["document"] = json.loads(case["document"])
        for item in case["document"].get("attachments") or []:
            if isinstance(item, dict) and isinstance(item.get("sha256"), str):
                out.attachments.append((item["sha256"], str(item.get("file_name") or "file")))
    out.documents["cases.json"] = cases
    out.documents["statuses.json"] = _rows(
        tx, "SELECT case_code, status, at_text, department, text, category, origin "
        "FROM case_statuses WHERE case_id IN ({marks}) ORDER BY case_code, at, id",
        target.case_ids)
    raws = _rows(tx, "SELECT id, source, channel, source_ref, received_at, content_type, "
                 "metadata, payload, idempotency_key, status FROM raw_records "
                 "WHERE id IN ({marks}) ORDER BY id", target.raw_ids)
    for raw in raws:
        out.payloads[int(raw["id"])] = bytes(raw.pop("payload") or b"")
        raw["payload_file"] = f"raw/{raw['id']}.bin"
        raw["metadata"] = json.loads(raw["metadata"] or "{}")
    out.documents["raw_records.json"] = raws
    calls = _rows(tx, "SELECT * FROM calls WHERE id IN ({marks}) ORDER BY id", target.call_ids)
    for call in calls:
        call["state"] = json.loads(call["state"]) if call.get("state") else None
    out.documents["calls.json"] = calls
    entries = []  # of the raw records, and those found without one
    for column, ids in (("raw_id", target.raw_ids), ("id", target.quarantine_ids)):
        entries += _rows(tx, "SELECT id, source, raw_id, reason, detail, created_at, "
                         f"resolved_at, resolution FROM quarantine WHERE {column} IN "
                         "({marks}) ORDER BY id", ids)
    for entry in entries:
        entry["detail"] = json.loads(entry["detail"]) if entry.get("detail") else None
    out.documents["quarantine.json"] = sorted(entries, key=lambda e: int(e["id"]))
    return out
