"""Erasing one person's data (``minsheng subject erase``): every table, one transaction.

The erasure is a list of per-table steps (``STEPS``), each deleting (or blanking) the
rows of the cases, raw records and calls ``gateway/store/subject.py`` found. A table
added later is one line here (a ``delete_rows`` of its case-id column). Around them:

- a **tombstone** per replay key of each erased submission (its ``ref:``/``idem:`` keys
  as the source filed them, and the source reference of each raw record) and one for the
  identifier asked for, each an HMAC under the identifier key (``IdentifierKeys``), with
  the time, reason and operator: a replay of the same submission is answered ``erased``
  instead of being filed again (``is_erased``), and nothing in the tombstone reveals who;
- an **erasure event** in the outbox (kind ``erasure``) for each sink that received one
  of the cases (a delivered entry of it, or no entry left because delivered ones were
  purged), naming the case code and nothing personal;
- the attachment files no other case lists are queued for deletion
  (``attachment_files``), done after the commit.

Everything is one transaction: a crash leaves the person's data whole or erased.
SQLite runs it with ``PRAGMA secure_delete=ON`` so the freed cells and pages are zeroed;
``scrub`` (after the commit) checkpoints the WAL away, or vacuums on PostgreSQL.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.store import attachment_files, cases, outbox
from gateway.store.dedup_index import unpack_bands
from gateway.store.engine import Tx
from gateway.store.subject import Holdings, Subject, SubjectKind
from gateway.support.keyed_ids import IdentifierKeys, IdKind

_CHUNK = 400


@dataclass(frozen=True)
class Target:
    """What one erasure removes, and the codes of its cases (for the report and events)."""

    case_ids: list[int]
    raw_ids: list[int]
    call_ids: list[int]
    case_codes: list[str] = field(default_factory=list)
    quarantine_ids: list[int] = field(default_factory=list)  # entries without a raw record

    @property
    def empty(self) -> bool:
        return not (self.case_ids or self.raw_ids or self.call_ids or self.quarantine_ids)

    def ids(self, which: str) -> list[int]:
        ids: list[int] = getattr(self, which)
        return ids


Step = Callable[[Tx, Target], int]


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i:i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _count_and_run(tx: Tx, sql_count: str, sql_do: str, values: Sequence[Any]) -> int:
    n = int(tx.fetchone(sql_count, values)[0])
    if n:
        tx.execute(sql_do, values)
    return n


def delete_rows(table: str, column: str, which: str = "case_ids") -> Step:
    """A step deleting the rows of ``table`` whose ``column`` is one of the target's
    ``which`` ids (case_ids, raw_ids, call_ids or quarantine_ids)."""
    def step(tx: Tx, target: Target) -> int:
        n = 0
        for chunk in _chunks(target.ids(which)):
            where = f"{column} IN ({_marks(chunk)})"
            n += _count_and_run(tx, f"SELECT COUNT(*) FROM {table} WHERE {where}",
                                f"DELETE FROM {table} WHERE {where}", chunk)
        return n
    return step


def _dedup_bands(tx: Tx, target: Target) -> int:
    """By the band keys kept in each entry (the table's key leads with the band key)."""
    n = 0
    for chunk in _chunks(target.case_ids):
        for case_id, packed in tx.fetchall(
                f"SELECT case_id, bands FROM dedup_entries WHERE case_id IN ({_marks(chunk)})",
                chunk):
            keys = unpack_bands(packed)
            if keys:
                where = f"band_key IN ({_marks(keys)}) AND case_id = ?"
                n += _count_and_run(tx, f"SELECT COUNT(*) FROM dedup_bands WHERE {where}",
                                    f"DELETE FROM dedup_bands WHERE {where}",
                                    [*keys, case_id])
    return n


def _cluster_snippets(tx: Tx, target: Target) -> int:
    """A cluster opened by an erased case keeps its other cases but loses its snippet
    (the erased case's text)."""
    n = 0
    for chunk in _chunks(target.case_ids):
        where = f"first_case_id IN ({_marks(chunk)})"
        n += _count_and_run(tx, f"SELECT COUNT(*) FROM dedup_clusters WHERE {where}",
                            f"UPDATE dedup_clusters SET snippet = '' WHERE {where}", chunk)
    return n


def _quarantine(tx: Tx, target: Target) -> int:
    """The entries of the target's raw records, and those that matched without one."""
    return (delete_rows("quarantine", "raw_id", "raw_ids")(tx, target)
            + delete_rows("quarantine", "id", "quarantine_ids")(tx, target))


def _citizen_notices(tx: Tx, target: Target) -> int:
    """What was sent back to the citizen is kept by case code (a keyed recipient digest)."""
    n = 0
    for chunk in _chunks(target.case_codes):
        where = f"case_code IN ({_marks(chunk)})"
        n += _count_and_run(tx, f"SELECT COUNT(*) FROM citizen_notices WHERE {where}",
                            f"DELETE FROM citizen_notices WHERE {where}", chunk)
    return n


# Order matters only for readability: everything is one transaction. A table that lands
# later and holds something of a case is one more line here. The access log (audit_log)
# holds no personal fields and is kept: it records the erasure itself.
STEPS: list[tuple[str, Step]] = [
    ("outbox", delete_rows("outbox", "case_id")),
    ("case_statuses", delete_rows("case_statuses", "case_id")),
    ("case_attachments", delete_rows("case_attachments", "case_id")),
    ("dedup_keys", delete_rows("dedup_keys", "case_id")),
    ("dedup_reporters", delete_rows("dedup_reporters", "case_id")),
    ("dedup_rekey", delete_rows("dedup_rekey", "case_id")),
    ("dedup_bands", _dedup_bands),
    ("dedup_entries", delete_rows("dedup_entries", "case_id")),
    ("dedup_clusters", _cluster_snippets),
    ("quarantine", _quarantine),
    ("case_lookup", delete_rows("case_lookup", "case_id")),
    ("citizen_notices", _citizen_notices),
    ("calls", delete_rows("calls", "id", "call_ids")),
    ("raw_records", delete_rows("raw_records", "id", "raw_ids")),
    ("cases", delete_rows("cases", "id")),
]
# The tables the steps change: what ``scrub`` vacuums on PostgreSQL.
TOUCHED = sorted({name for name, _ in STEPS} | {"erasure_tombstones",
                                                "attachment_deletions"})


@dataclass(frozen=True)
class Erased:
    """What one erasure removed: rows per table, case codes, tombstones, events, files."""

    rows: dict[str, int]
    case_codes: list[str]
    tombstones: int
    events: int
    files_queued: int

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "case_codes": self.case_codes,
                "tombstones": self.tombstones, "erasure_events": self.events,
                "attachment_files_queued": self.files_queued}


def target_of(tx: Tx, held: Holdings) -> Target:
    case_ids = sorted(held.case_ids)
    codes: list[str] = []
    for chunk in _chunks(case_ids):
        codes += [str(r[0]) for r in tx.fetchall(
            f"SELECT case_code FROM cases WHERE id IN ({_marks(chunk)})", chunk)]
    return Target(case_ids, sorted(held.raw_ids), sorted(held.call_ids), sorted(codes),
                  sorted(held.quarantine_ids))


def tombstone_hash(keys: IdentifierKeys, scope: str, key: str) -> str:
    """The tombstone of one replay key of source ``scope`` (``ref:…``, ``idem:…``)."""
    return keys.digest(IdKind.TEXT, key, scope=f"erased:{scope}")


def _replay_keys(tx: Tx, target: Target) -> set[tuple[str, str]]:
    """(source, key) of every replay key of the target: as filed, and of each raw record."""
    found: set[tuple[str, str]] = set()
    for chunk in _chunks(target.case_ids):
        found.update((str(s), str(k)) for s, k in tx.fetchall(
            f"SELECT scope, key FROM dedup_keys WHERE case_id IN ({_marks(chunk)})", chunk))
    for chunk in _chunks(target.raw_ids):
        for source, ref, idem in tx.fetchall(
                "SELECT source, source_ref, idempotency_key FROM raw_records "
                f"WHERE id IN ({_marks(chunk)})", chunk):
            found.add((str(source), f"ref:{ref}"))
            if idem:
                found.add((str(source), f"idem:{idem}"))
    return found


def _receivers(tx: Tx, case_id: int, sinks: Sequence[str]) -> list[str]:
    """The sinks that received the case: a delivered entry of it, or (delivered entries
    are purged after the outbox retention) no entry of it left at all."""
    rows = tx.fetchall("SELECT sink, state FROM outbox WHERE case_id = ?", (case_id,))
    if not rows:
        return list(sinks)
    return sorted({str(sink) for sink, state in rows if state == outbox.DELIVERED})


def is_erased(tx: Tx, keys: IdentifierKeys, scope: str, replay_keys: Sequence[str]) -> bool:
    """Whether any of ``replay_keys`` of source ``scope`` belongs to an erased submission
    (under the current or a previous identifier key)."""
    hashes = _tombstone_candidates(keys, scope, replay_keys)
    if not hashes:
        return False
    row = tx.fetchone(f"SELECT 1 FROM erasure_tombstones WHERE key_hash IN ({_marks(hashes)})",
                      hashes)
    return row is not None


ERASED: Literal["erased"] = "erased"


@dataclass(frozen=True)
class FiledQuery:
    """The one read that tells whether a submission's replay keys were filed already
    (``cases.find_by_key``) or belong to an erased submission (``is_erased``): one
    statement for both, inside the intake's transaction — no read of its own before it
    (a thread hop and a future per submission), and no wait more for PostgreSQL than
    ``find_by_key`` alone. Made once per submission, so that the statement can be sent
    ahead (``send_ahead``) and read later with the same text."""

    replay_keys: list[str]
    sql: str
    params: tuple[Any, ...]
    tombstones: frozenset[str]  # hex digests: never a ``ref:``/``idem:`` key

    def send_ahead(self, tx: Tx) -> None:
        if self.replay_keys:
            tx.read_ahead(self.sql, self.params)

    def read(self, tx: Tx) -> tuple[int, str] | Literal["erased"] | None:
        """``ERASED``, else the case filed under the first of the keys that has one."""
        if not self.replay_keys:
            return None
        rows = tx.fetchall(self.sql, self.params)
        if self.tombstones and any(str(row[0]) in self.tombstones for row in rows):
            return ERASED
        return cases.first_filed(self.replay_keys, rows)


def filed_query(keys: IdentifierKeys | None, scope: str, replay_keys: list[str]) -> FiledQuery:
    """The ``FiledQuery`` of ``replay_keys`` of source ``scope``; without identifier keys
    (nothing can have been erased) only the filed case is looked for."""
    sql, params = cases.by_key_sql(len(replay_keys)), (scope, *replay_keys)
    hashes = _tombstone_candidates(keys, scope, replay_keys) if keys is not None else []
    if hashes:
        sql += (" UNION ALL SELECT key_hash, 0, '' FROM erasure_tombstones "
                f"WHERE key_hash IN ({_marks(hashes)})")
        params = (*params, *hashes)
    return FiledQuery(replay_keys, sql, params, frozenset(hashes))


def _tombstone_candidates(keys: IdentifierKeys, scope: str,
                          replay_keys: Sequence[str]) -> list[str]:
    """The tombstone hashes ``replay_keys`` of ``scope`` would have, under every accepted
    identifier key."""
    return [h for key in replay_keys
            for h in keys.candidates(IdKind.TEXT, key, scope=f"erased:{scope}")]


def erase(tx: Tx, target: Target, subject: Subject, keys: IdentifierKeys,
          sinks: Sequence[str], reason: str, operator: str) -> Erased:
    """Remove ``target`` in this transaction (see the module docstring)."""
    if tx.dialect.name == "sqlite":
        tx.execute("PRAGMA secure_delete=ON")  # this connection zeroes what it frees
    now = time.time()
    tombs = {(tombstone_hash(keys, source, key), "replay_key")
             for source, key in _replay_keys(tx, target)}
    kind = {SubjectKind.PHONE: IdKind.PHONE, SubjectKind.EMAIL: IdKind.EMAIL}.get(subject.kind)
    if kind is not None:
        tombs.add((keys.digest(kind, subject.value), subject.kind.value))
    for key_hash, what in sorted(tombs):
        tx.execute("INSERT INTO erasure_tombstones (key_hash, kind, erased_at, reason, "
                   "operator) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_hash) DO NOTHING",
                   (key_hash, what, now, reason, operator))
    events = 0
    at = datetime.fromtimestamp(now, UTC).isoformat()
    for case_id in target.case_ids:
        code = tx.fetchone("SELECT case_code FROM cases WHERE id = ?", (case_id,))[0]
        receivers = _receivers(tx, case_id, sinks)
        body = json.dumps({"kind": "erasure", "case_code": code, "erased_at": at})
        outbox.enqueue(tx, receivers, None, kind="erasure", payload=body)
        events += len(receivers)
    digests = {str(r[0]) for chunk in _chunks(target.case_ids) for r in tx.fetchall(
        f"SELECT sha256 FROM case_attachments WHERE case_id IN ({_marks(chunk)})", chunk)}
    rows: Counter[str] = Counter()
    for name, step in STEPS:
        rows[name] += step(tx, target)
    files = attachment_files.queue_unused(tx, digests)
    return Erased(dict(rows), target.case_codes, len(tombs), events, files)


def scrub(conn: Any, engine: str, full: bool = True) -> list[str]:
    """After the commit, on a connection in autocommit mode: leave no old copy of the
    erased rows where the engine keeps them. SQLite: checkpoint the WAL into the database
    and truncate it. PostgreSQL: VACUUM FULL of the touched tables (plain VACUUM leaves
    the old tuples' bytes in the pages' free space; docs/personal-data.md). Returns the
    statements run."""
    if engine == "sqlite":
        statements = ["PRAGMA wal_checkpoint(TRUNCATE)"]
    else:
        verb = "VACUUM FULL" if full else "VACUUM"
        statements = [f"{verb} {table}" for table in TOUCHED]
    for statement in statements:
        conn.execute(statement)
    return statements
