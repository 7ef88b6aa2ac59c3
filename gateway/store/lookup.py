"""What the look-up by case code matches a citizen's question against (``case_lookup``,
migration 8), one row per case.

A citizen proves a case is theirs with the last four digits of the phone number, or the
e-mail address, the case was filed with. Neither is kept here in clear: the row holds
their keyed digests (``IdentifierKeys.digest``, scoped to the case code, so the same four
digits of another case never match) made when the case is filed. The look-up reads this
table and the status history only, never the case document: retention may strip the
reporter from old documents, and the look-up keeps working.

The row also holds what the answer shows besides the statuses (channel, time received),
so answering needs nothing personal at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.model.schema import Complaint
from gateway.store.engine import Tx
from gateway.support.keyed_ids import IdentifierKeys, IdKind, canonical

BACKFILL_CHUNK = 500  # cases read per transaction while filling rows at start-up
_COLUMNS = "case_code, channel, received_at, phone_last4, email"


@dataclass(frozen=True)
class LookupRow:
    """One case as the look-up sees it: its digests and nothing personal."""

    case_code: str
    channel: str
    received_at: float
    phone_last4: str | None  # hex digest or None (no phone number on the case)
    email: str | None  # hex digest or None (no e-mail address on the case)

    def digest_of(self, kind: IdKind) -> str | None:
        return self.phone_last4 if kind is IdKind.PHONE_LAST4 else self.email


def last4(phone: str | None) -> str | None:
    """The last four digits of a phone number; None when it has fewer."""
    digits = canonical(IdKind.PHONE, phone or "")
    return digits[-4:] if len(digits) >= 4 else None


def digests(keys: IdentifierKeys, case_code: str, phone: str | None,
            email: str | None) -> tuple[str | None, str | None]:
    """(phone digest, e-mail digest) of a case, under the current key."""
    digits = last4(phone)
    address = (email or "").strip()
    return (keys.digest(IdKind.PHONE_LAST4, digits, scope=case_code) if digits else None,
            keys.digest(IdKind.EMAIL, address, scope=case_code) if address else None)


def _write(tx: Tx, case_id: int, case_code: str, channel: str, received_at: float,
           phone: str | None, email: str | None, keys: IdentifierKeys, replace: bool) -> None:
    phone_digest, email_digest = digests(keys, case_code, phone, email)
    # An update never forgets a digest: a document rewritten without the reporter (a
    # late call record, retention) leaves the look-up as it was.
    conflict = ("DO UPDATE SET phone_last4 = COALESCE(excluded.phone_last4, "
                "case_lookup.phone_last4), email = COALESCE(excluded.email, case_lookup.email)"
                if replace else "DO NOTHING")
    tx.execute(
        "INSERT INTO case_lookup (case_id, case_code, channel, received_at, phone_last4, "
        f"email) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (case_id) {conflict}",
        (case_id, case_code, channel, received_at, phone_digest, email_digest))


def record(tx: Tx, keys: IdentifierKeys, case_id: int, complaint: Complaint, *,
           new: bool = False) -> None:
    """Inside the transaction that files (or updates) a case: its look-up row. A ``new``
    case has none yet, so nothing to merge with: a plain insert, which a batch sends with
    the others of its kind (gateway/store/coalesce.py)."""
    reporter = complaint.reporter
    _write(tx, case_id, complaint.case_code, complaint.channel,
           complaint.received_at.timestamp(), reporter.phone, reporter.email, keys,
           replace=not new)


def find(tx: Tx, case_code: str) -> LookupRow | None:
    row = tx.fetchone(f"SELECT {_COLUMNS} FROM case_lookup WHERE case_code = ?", (case_code,))
    if row is None:
        return None
    return LookupRow(str(row[0]), str(row[1]), float(row[2]), row[3], row[4])


def backfill(tx: Tx, keys: IdentifierKeys, limit: int = BACKFILL_CHUNK) -> int:
    """Fill the rows of up to ``limit`` cases that have none (filed before migration 8)
    from their documents; the number filled (0: every case has its row). Run at start-up,
    one chunk per transaction, so a big store never holds the writer for long."""
    rows = tx.fetchall(
        "SELECT c.id, c.case_code, c.channel, c.created_at, c.document FROM cases c "
        "LEFT JOIN case_lookup l ON l.case_id = c.id WHERE l.case_id IS NULL "
        "ORDER BY c.id LIMIT ?", (limit,))
    for case_id, code, channel, created_at, document in rows:
        doc = _object(document)
        reporter = doc.get("reporter")
        reporter = reporter if isinstance(reporter, dict) else {}
        _write(tx, int(case_id), str(code), str(channel),
               _timestamp(doc.get("received_at"), float(created_at)),
               _text(reporter.get("phone")), _text(reporter.get("email")), keys, False)
    return len(rows)


def _object(document: str) -> dict[str, Any]:
    try:
        value = json.loads(document)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _timestamp(value: object, fallback: float) -> float:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return fallback
