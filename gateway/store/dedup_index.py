"""The dedup index: one entry per recent case, its LSH band keys and reporter keys, and
the clusters of related cases. Rows in the store, so every replica sees one index.

Times (``at``) are the complaints' ``received_at`` in epoch seconds. Entries older than
the window are deleted by ``prune``; clusters are kept until their latest case leaves
the window. Reporter keys are stored as keyed digests (HMAC-SHA256 under
``privacy.identifier_key``, gateway/support/keyed_ids.py), never in clear nor as a plain
hash; the cases migration 10 found filed under the old unkeyed hash wait in
``dedup_rekey`` until the gateway, which holds the key, files them again
(``Deduplicator.rekey``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.store import cases
from gateway.store.dialect import Dialect
from gateway.store.engine import Tx

HOT_TOPIC_SCOPE = "dedup:hot_topic_events"
_PRUNE_CHUNK = 200  # entries per DELETE: 20 band keys each stay well under bind limits
_ENTRY = "e.case_id, e.case_code, e.at, e.content_hash, e.signature, e.cluster_id, e.repeat_of"


@dataclass(frozen=True)
class Entry:
    """What the index knows of a case, enough to compare a new complaint with it."""

    case_id: int
    case_code: str
    at: float
    content_hash: int
    signature: bytes
    cluster_id: str | None
    repeat_of: str | None


@dataclass(frozen=True)
class Link:
    """Why a case was linked: written when it is filed, read by ``dedup explain``."""

    case_code: str
    at: float
    kind: str
    cluster_id: str | None
    repeat_of: str | None
    matched_code: str | None
    similarity: float | None
    shared_key: str | None


@dataclass(frozen=True)
class Cluster:
    cluster_id: str
    first_code: str
    first_at: float
    latest_code: str
    latest_at: float
    size: int
    snippet: str
    hot_at: float | None
    hot_events: int
    recent: int = 0  # cases since the time asked for (``top_clusters``)


def _entry(row: Sequence[Any]) -> Entry:
    return Entry(int(row[0]), str(row[1]), float(row[2]), int(row[3]), bytes(row[4] or b""),
                 row[5], row[6])


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


# -- writing -----------------------------------------------------------------------------


def pack_bands(bands: Sequence[int]) -> bytes:
    """Distinct band keys, sorted, as signed 32-bit little-endian values (kept in the entry,
    so ``prune`` finds its ``dedup_bands`` rows by their primary key)."""
    keys = sorted(set(bands))
    return struct.pack(f"<{len(keys)}i", *keys)


def unpack_bands(packed: bytes | None) -> list[int]:
    data = bytes(packed or b"")
    return [int.from_bytes(data[i:i + 4], "little", signed=True)
            for i in range(0, len(data) - 3, 4)]


def insert_entry(
    tx: Tx, case_id: int, link: Link, content_hash: int, signature: bytes,
    bands: Sequence[int] = (),
) -> None:
    tx.execute(
        "INSERT INTO dedup_entries (case_id, case_code, at, content_hash, signature, kind, "
        "cluster_id, repeat_of, matched_code, similarity, shared_key, bands) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (case_id, link.case_code, link.at, content_hash, signature, link.kind,
         link.cluster_id, link.repeat_of, link.matched_code, link.similarity,
         link.shared_key, pack_bands(bands)),
    )


def insert_keys(tx: Tx, case_id: int, bands: Sequence[int], reporters: Sequence[int]) -> None:
    """File the case under its band keys and (hashed) reporter keys, one statement each."""
    distinct = sorted(set(bands))  # (band_key, case_id) is the key: no repeated band key
    if distinct:
        tx.execute(
            "INSERT INTO dedup_bands (band_key, case_id) VALUES "
            + ", ".join("(?, ?)" for _ in distinct),
            [v for key in distinct for v in (key, case_id)],
        )
    if reporters:
        tx.execute(
            "INSERT INTO dedup_reporters (reporter_key, case_id) VALUES "
            + ", ".join("(?, ?)" for _ in reporters),
            [v for key in reporters for v in (key, case_id)],
        )


def refile(
    tx: Tx, case_id: int, content_hash: int, signature: bytes, bands: Sequence[int],
    reporters: Sequence[int],
) -> bool:
    """File an already indexed case again under new text and reporter keys (its text
    changed after it was filed); False when the case is not in the index (filed with
    dedup off, or pruned). Its own decision (kind, cluster) is left as it was."""
    row = tx.fetchone("SELECT bands FROM dedup_entries WHERE case_id = ?", (case_id,))
    if row is None:
        return False
    old = unpack_bands(row[0])
    if old:
        tx.execute(f"DELETE FROM dedup_bands WHERE band_key IN ({_marks(old)}) AND case_id = ?",
                   [*old, case_id])
    tx.execute("DELETE FROM dedup_reporters WHERE case_id = ?", (case_id,))
    tx.execute("UPDATE dedup_entries SET content_hash = ?, signature = ?, bands = ? "
               "WHERE case_id = ?", (content_hash, signature, pack_bands(bands), case_id))
    insert_keys(tx, case_id, bands, reporters)
    return True


def set_cluster(tx: Tx, case_id: int, cluster_id: str) -> None:
    tx.execute("UPDATE dedup_entries SET cluster_id = ? WHERE case_id = ?", (cluster_id, case_id))


def open_cluster(tx: Tx, cluster_id: str, first: Entry, snippet: str) -> None:
    """Start the cluster with ``first``; ``snippet`` (its text) represents the cluster."""
    tx.execute(
        "INSERT INTO dedup_clusters (cluster_id, first_case_id, first_code, first_at, "
        "latest_code, latest_at, size, snippet, hot_events) VALUES (?, ?, ?, ?, ?, ?, 1, ?, 0) "
        "ON CONFLICT (cluster_id) DO NOTHING",
        (cluster_id, first.case_id, first.case_code, first.at, first.case_code, first.at,
         snippet),
    )


def grow_cluster(tx: Tx, cluster_id: str, case_code: str, at: float) -> None:
    tx.execute(
        "UPDATE dedup_clusters SET size = size + 1, latest_code = ?, latest_at = ? "
        "WHERE cluster_id = ?",
        (case_code, at, cluster_id),
    )


def mark_hot(tx: Tx, cluster_id: str, at: float) -> int:
    """Note a hot-topic event of the cluster; returns the store-wide number of them."""
    tx.execute(
        "UPDATE dedup_clusters SET hot_at = ?, hot_events = hot_events + 1 WHERE cluster_id = ?",
        (at, cluster_id),
    )
    return cases.next_value(tx, HOT_TOPIC_SCOPE)


def prune(tx: Tx, before: float, limit: int) -> int:
    """Delete up to ``limit`` entries received before ``before`` (with their keys), and
    the clusters whose latest case is that old; returns how many entries went."""
    rows = tx.fetchall(
        "SELECT case_id, bands FROM dedup_entries WHERE at < ? ORDER BY at LIMIT ?",
        (before, limit),
    )
    for first in range(0, len(rows), _PRUNE_CHUNK):
        chunk = rows[first:first + _PRUNE_CHUNK]
        ids = [int(r[0]) for r in chunk]
        keys = sorted({key for r in chunk for key in unpack_bands(r[1])})
        if keys:  # the rows of these cases are exactly those with their keys and ids;
            # ``+case_id``: probe the key per band key, do not cross it with every id
            tx.execute(f"DELETE FROM dedup_bands WHERE band_key IN ({_marks(keys)}) "
                       f"AND +case_id IN ({_marks(ids)})", [*keys, *ids])
        for table in ("dedup_reporters", "dedup_entries"):
            tx.execute(f"DELETE FROM {table} WHERE case_id IN ({_marks(ids)})", ids)
    tx.execute("DELETE FROM dedup_clusters WHERE latest_at < ?", (before,))
    return len(rows)


def pending_rekey(tx: Tx, limit: int) -> list[int]:
    """Cases whose unkeyed reporter rows migration 10 deleted, still to be filed again."""
    rows = tx.fetchall("SELECT case_id FROM dedup_rekey ORDER BY case_id LIMIT ?", (limit,))
    return [int(r[0]) for r in rows]


def rekey_done(tx: Tx, case_ids: Sequence[int]) -> None:
    if case_ids:
        tx.execute(f"DELETE FROM dedup_rekey WHERE case_id IN ({_marks(case_ids)})",
                   list(case_ids))


# -- reading -----------------------------------------------------------------------------


def by_reporters_query(reporters: Sequence[int], since: float, limit: int
                       ) -> tuple[str, tuple[Any, ...]]:
    return (f"SELECT r.reporter_key, {_ENTRY} FROM dedup_reporters r "
            "JOIN dedup_entries e ON e.case_id = r.case_id "
            f"WHERE r.reporter_key IN ({_marks(reporters)}) AND e.at >= ? "
            "ORDER BY r.case_id DESC LIMIT ?", (*reporters, since, limit))


def by_reporters(
    tx: Tx, reporters: Sequence[int], since: float, limit: int
) -> list[tuple[int, Entry]]:
    """The latest entries since ``since`` filed under any of the (hashed) reporter keys,
    newest first, each with the key it was found under."""
    if not reporters:
        return []
    rows = tx.fetchall(*by_reporters_query(reporters, since, limit))
    return [(int(r[0]), _entry(r[1:])) for r in rows]


def by_bands_query(dialect: Dialect, bands: Sequence[int], since: float, limit: int
                   ) -> tuple[str, tuple[Any, ...]]:
    """Entries since ``since`` sharing a band key, those sharing the most bands first.

    The band keys are counted per case first, then each counted case's entry is looked up
    by its key. On PostgreSQL that look-up is a ``LATERAL`` subquery behind ``OFFSET 0``,
    which the planner cannot turn into a hash join: with a plain join, tables it has not
    analyzed yet (a new store: the first minute, before autovacuum) made it hash every
    entry of the window for each submission, 2-6 ms a statement growing with the window,
    where the look-ups take a few hundred µs (docs/dedup.md)."""
    counted = (f"SELECT case_id, COUNT(*) AS hits FROM dedup_bands "
               f"WHERE band_key IN ({_marks(bands)}) GROUP BY case_id")
    if dialect.lateral_join:
        entry = ("CROSS JOIN LATERAL (SELECT * FROM dedup_entries x "
                 "WHERE x.case_id = h.case_id AND x.at >= ? OFFSET 0) e")
    else:
        entry = "JOIN dedup_entries e ON e.case_id = h.case_id AND e.at >= ?"
    return (f"SELECT {_ENTRY}, h.hits FROM ({counted}) h {entry} "
            "ORDER BY h.hits DESC, e.case_id DESC LIMIT ?", (*bands, since, limit))


def by_bands(tx: Tx, bands: Sequence[int], since: float, limit: int) -> list[Entry]:
    """Entries since ``since`` sharing a band key, those sharing the most bands first."""
    if not bands:
        return []
    return [_entry(r) for r in tx.fetchall(*by_bands_query(tx.dialect, bands, since, limit))]


def cluster_count_since(tx: Tx, cluster_id: str, since: float) -> int:
    row = tx.fetchone(
        "SELECT COUNT(*) FROM dedup_entries WHERE cluster_id = ? AND at >= ?",
        (cluster_id, since),
    )
    return int(row[0])


_CLUSTER = ("c.cluster_id, c.first_code, c.first_at, c.latest_code, c.latest_at, c.size, "
            "c.snippet, c.hot_at, c.hot_events")


def _cluster(row: Sequence[Any], recent: int = 0) -> Cluster:
    return Cluster(str(row[0]), str(row[1]), float(row[2]), str(row[3]), float(row[4]),
                   int(row[5]), str(row[6]), row[7], int(row[8]), recent)


def get_cluster(tx: Tx, cluster_id: str) -> Cluster | None:
    row = tx.fetchone(f"SELECT {_CLUSTER} FROM dedup_clusters c WHERE c.cluster_id = ?",
                      (cluster_id,))
    return _cluster(row) if row else None


def top_clusters(tx: Tx, since: float, limit: int = 10) -> list[Cluster]:
    """The clusters that gained the most cases since ``since`` (within the window)."""
    rows = tx.fetchall(
        f"SELECT {_CLUSTER}, n.recent FROM (SELECT cluster_id, COUNT(*) AS recent "
        "FROM dedup_entries WHERE cluster_id IS NOT NULL AND at >= ? GROUP BY cluster_id) n "
        "JOIN dedup_clusters c ON c.cluster_id = n.cluster_id "
        "ORDER BY n.recent DESC, c.latest_at DESC LIMIT ?",
        (since, limit),
    )
    return [_cluster(r, int(r[9])) for r in rows]


def get_link(tx: Tx, case_id: int) -> Link | None:
    row = tx.fetchone(
        "SELECT case_code, at, kind, cluster_id, repeat_of, matched_code, similarity, "
        "shared_key FROM dedup_entries WHERE case_id = ?",
        (case_id,),
    )
    if row is None:
        return None
    return Link(str(row[0]), float(row[1]), str(row[2]), row[3], row[4], row[5],
                None if row[6] is None else float(row[6]), row[7])


def hot_topic_events_total(tx: Tx) -> int:
    """Hot-topic events raised so far, by every replica (for ``/metrics``)."""
    row = tx.fetchone("SELECT value FROM sequences WHERE scope = ?", (HOT_TOPIC_SCOPE,))
    return int(row[0]) if row else 0


def count_entries(tx: Tx) -> int:
    return int(tx.fetchone("SELECT COUNT(*) FROM dedup_entries")[0])
