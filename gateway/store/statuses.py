"""The status history the case platform sends back (``case_statuses``, migration 6).

One row per (case, status, time): the same update sent twice (a platform retrying after a
lost answer, a batch file imported again) finds the row it made the first time, so
``record`` is idempotent without the caller remembering anything. Times are compared as
instants (epoch seconds): ``10:00+08:00`` and ``02:00Z`` are the same update.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.model.case_status import CaseStatus, StatusUpdate
from gateway.store.engine import Tx

Origin = Literal["api", "import"]
_CHUNK = 500  # codes per IN (...): well under both engines' bind limits
_COLUMNS = "id, case_code, status, at, at_text, department, text, category, origin, received_at"


@dataclass(frozen=True)
class StatusEntry:
    id: int
    case_code: str
    status: CaseStatus
    at: float
    at_text: str
    department: str | None
    text: str | None
    category: str | None
    origin: Origin
    received_at: float

    def as_json(self) -> dict[str, Any]:
        """The entry as the API and ``minsheng cases show --json`` print it."""
        return {"status": self.status, "at": self.at_text, "department": self.department,
                "text": self.text, "category": self.category, "origin": self.origin}


def _entry(row: Any) -> StatusEntry:
    return StatusEntry(int(row[0]), str(row[1]), row[2], float(row[3]), str(row[4]), row[5],
                       row[6], row[7], row[8], float(row[9]))


def record(tx: Tx, case_id: int, case_code: str, update: StatusUpdate,
           origin: Origin) -> tuple[StatusEntry, bool]:
    """Add ``update`` to the case's history: (the entry, True) when it is new, (the entry
    stored the first time, False) when the same (case, status, time) is there already."""
    at = update.at.timestamp()
    inserted = tx.fetchone(
        "INSERT INTO case_statuses (case_id, case_code, status, at, at_text, department, "
        "text, category, origin, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (case_id, status, at) DO NOTHING RETURNING id",
        (case_id, case_code, update.status, at, update.at.isoformat(), update.department,
         update.text, update.category, origin, time.time()),
    )
    row = tx.fetchone(f"SELECT {_COLUMNS} FROM case_statuses WHERE case_id = ? AND status = ? "
                      "AND at = ?", (case_id, update.status, at))
    return _entry(row), inserted is not None


def record_for_code(tx: Tx, case_code: str, update: StatusUpdate,
                    origin: Origin) -> tuple[StatusEntry, bool] | None:
    """``record`` for the case ``case_code``; None when there is no such case."""
    row = tx.fetchone("SELECT id FROM cases WHERE case_code = ?", (case_code,))
    return None if row is None else record(tx, int(row[0]), case_code, update, origin)


def missing_codes(tx: Tx, codes: Iterable[str]) -> set[str]:
    """The codes among ``codes`` that name no case."""
    wanted = set(codes)
    for chunk in _chunks(wanted):
        marks = ", ".join("?" * len(chunk))
        rows = tx.fetchall(f"SELECT case_code FROM cases WHERE case_code IN ({marks})",
                           tuple(chunk))
        wanted -= {str(r[0]) for r in rows}
    return wanted


def history(tx: Tx, case_code: str) -> list[StatusEntry]:
    """The case's statuses in the order they happened (ties: the order received)."""
    rows = tx.fetchall(f"SELECT {_COLUMNS} FROM case_statuses WHERE case_code = ? "
                       "ORDER BY at, id", (case_code,))
    return [_entry(r) for r in rows]


def _chunks(codes: Iterable[str]) -> Iterable[Sequence[str]]:
    items = sorted(set(codes))
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def closed_among(tx: Tx, codes: Iterable[str]) -> set[str]:
    """The codes among ``codes`` whose latest closing or reopening status is ``closed``
    (a case reopened after it was closed is open again)."""
    closed: set[str] = set()
    for chunk in _chunks(codes):
        marks = ", ".join("?" * len(chunk))
        rows = tx.fetchall(
            f"SELECT case_code, status FROM case_statuses WHERE case_code IN ({marks}) "
            "AND status IN ('closed', 'reopened') ORDER BY case_code, at, id", tuple(chunk))
        latest = {str(code): status for code, status in rows}
        closed |= {code for code, status in latest.items() if status == "closed"}
    return closed


def final_categories(tx: Tx) -> list[tuple[str, str, str]]:
    """(case code, case document, category) of every case the platform sent a category
    for: the latest category per case, in case-code order."""
    rows = tx.fetchall(
        "SELECT s.case_code, c.document, s.category FROM case_statuses s "
        "JOIN cases c ON c.id = s.case_id WHERE s.category IS NOT NULL "
        "ORDER BY s.case_code, s.at, s.id")
    latest = {str(code): (str(document), str(category)) for code, document, category in rows}
    return [(code, document, category) for code, (document, category) in latest.items()]


def accept_delays(tx: Tx, bounds: Sequence[float]) -> tuple[list[int], float, int]:
    """Seconds from intake to a case's first ``accepted`` status, as a histogram:
    (cumulative counts at or below each bound, sum, count). Counted in SQL, so a scrape
    reads one row however many cases there are. A platform whose clock says it accepted
    a case before the gateway took it counts as 0 s, not as a negative time."""
    buckets = ", ".join("COALESCE(SUM(CASE WHEN d <= ? THEN 1 ELSE 0 END), 0)"
                        for _ in bounds)
    row = tx.fetchone(
        "WITH delays AS (SELECT MIN(s.at) - MIN(c.created_at) AS d FROM case_statuses s "
        "JOIN cases c ON c.id = s.case_id WHERE s.status = 'accepted' GROUP BY s.case_id), "
        "firsts AS (SELECT CASE WHEN d < 0 THEN 0 ELSE d END AS d FROM delays) "
        f"SELECT COUNT(*), COALESCE(SUM(d), 0){', ' if bounds else ''}{buckets} FROM firsts",
        tuple(bounds))
    return [int(v) for v in row[2:]], float(row[1]), int(row[0])
