"""The schema, as an ordered list of migrations shared by both engines.

Type slots (``{id}``, ``{blob}``, ``{real}``, ``{bigint}``) and ``{without_rowid}`` are
filled per dialect; the rest is SQL both SQLite (3.35+) and PostgreSQL understand. Times
are epoch seconds.
Append new migrations; never edit an applied one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.model.errors import GatewayError
from gateway.store import attachment_index, cases
from gateway.store.engine import Tx

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "journal, cases, outbox, quarantine, checkpoints, sequences, keys, leases", [
        """CREATE TABLE raw_records (
            id {id},
            source TEXT NOT NULL,
            channel TEXT NOT NULL,
            source_ref TEXT NOT NULL,
            received_at {real} NOT NULL,
            content_type TEXT NOT NULL,
            metadata TEXT NOT NULL,
            payload {blob} NOT NULL,
            idempotency_key TEXT,
            status TEXT NOT NULL,
            case_id {bigint},
            detail TEXT
        )""",
        "CREATE INDEX raw_records_ref ON raw_records (source, source_ref)",
        "CREATE INDEX raw_records_status ON raw_records (status, id)",
        """CREATE TABLE cases (
            id {id},
            case_code TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL,
            source_ref TEXT NOT NULL,
            channel TEXT NOT NULL,
            raw_id {bigint} NOT NULL,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL,
            feed_pos {bigint} NOT NULL UNIQUE,
            document TEXT NOT NULL
        )""",
        "CREATE INDEX cases_ref ON cases (source, source_ref)",
        """CREATE TABLE dedup_keys (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            case_id {bigint} NOT NULL,
            created_at {real} NOT NULL,
            PRIMARY KEY (scope, key)
        )""",
        """CREATE TABLE outbox (
            id {id},
            sink TEXT NOT NULL,
            case_id {bigint},
            kind TEXT NOT NULL,
            payload TEXT,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at {real} NOT NULL,
            next_attempt_at {real} NOT NULL,
            lease_until {real} NOT NULL DEFAULT 0,
            lease_owner TEXT,
            last_error TEXT,
            finished_at {real}
        )""",
        "CREATE INDEX outbox_pending ON outbox (sink, id) WHERE state = 'pending'",
        "CREATE INDEX outbox_state ON outbox (state, sink)",
        """CREATE TABLE quarantine (
            id {id},
            source TEXT NOT NULL,
            raw_id {bigint},
            reason TEXT NOT NULL,
            detail TEXT,
            created_at {real} NOT NULL,
            resolved_at {real},
            resolution TEXT
        )""",
        "CREATE INDEX quarantine_open ON quarantine (id) WHERE resolved_at IS NULL",
        """CREATE TABLE checkpoints (
            source TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at {real} NOT NULL
        )""",
        "CREATE TABLE sequences (scope TEXT PRIMARY KEY, value {bigint} NOT NULL)",
        """CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at {real} NOT NULL
        )""",
    ]),
    # The phone channel: one row per call, joined from its events (adapters/cdr_webhook/flow.py).
    (2, "calls", [
        """CREATE TABLE calls (
            id {id},
            source TEXT NOT NULL,
            call_id TEXT NOT NULL,
            direction TEXT NOT NULL,
            caller TEXT,
            agent TEXT,
            status TEXT NOT NULL,
            disposition TEXT,
            offered_at {real} NOT NULL,
            answered_at {real},
            ended_at {real},
            ring_seconds INTEGER,
            talk_seconds INTEGER,
            has_notes INTEGER NOT NULL,
            case_id {bigint},
            case_kind TEXT,
            waiting_for TEXT,
            due_at {real},
            events INTEGER NOT NULL,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL,
            state TEXT NOT NULL,
            UNIQUE (source, call_id)
        )""",
        "CREATE INDEX calls_offered ON calls (offered_at)",
        "CREATE INDEX calls_due ON calls (due_at) WHERE due_at IS NOT NULL",
    ]),
    # Dedup beyond replays (gateway/dedup/deduplicator.py): recent cases, their LSH band keys and
    # hashed reporter keys, and clusters of related cases.
    (3, "dedup index", [
        """CREATE TABLE dedup_entries (
            case_id {bigint} PRIMARY KEY,
            case_code TEXT NOT NULL,
            at {real} NOT NULL,
            content_hash {bigint} NOT NULL,
            signature {blob},
            kind TEXT NOT NULL,
            cluster_id TEXT,
            repeat_of TEXT,
            matched_code TEXT,
            similarity {real},
            shared_key TEXT,
            bands {blob}
        )""",
        "CREATE INDEX dedup_entries_at ON dedup_entries (at)",
        "CREATE INDEX dedup_entries_cluster ON dedup_entries (cluster_id, at) "
        "WHERE cluster_id IS NOT NULL",
        # One B-tree on SQLite (the key is the row); pruned by the keys kept in the entry.
        "CREATE TABLE dedup_bands (band_key {bigint} NOT NULL, case_id {bigint} NOT NULL, "
        "PRIMARY KEY (band_key, case_id)){without_rowid}",
        "CREATE TABLE dedup_reporters (reporter_key {bigint} NOT NULL, case_id {bigint} NOT NULL)",
        "CREATE INDEX dedup_reporters_key ON dedup_reporters (reporter_key, case_id)",
        "CREATE INDEX dedup_reporters_case ON dedup_reporters (case_id)",
        """CREATE TABLE dedup_clusters (
            cluster_id TEXT PRIMARY KEY,
            first_case_id {bigint} NOT NULL,
            first_code TEXT NOT NULL,
            first_at {real} NOT NULL,
            latest_code TEXT NOT NULL,
            latest_at {real} NOT NULL,
            size INTEGER NOT NULL,
            snippet TEXT NOT NULL,
            hot_at {real},
            hot_events INTEGER NOT NULL
        )""",
        "CREATE INDEX dedup_clusters_latest ON dedup_clusters (latest_at)",
    ]),
    # Retention of delivered outbox entries (outbox.purge_delivered): the oldest
    # deliveries first, without reading or sorting the rest of the table. ``state`` leads
    # so SQLite's planner picks this index over outbox_state without ANALYZE statistics.
    (4, "outbox retention", [
        "CREATE INDEX outbox_delivered ON outbox (state, finished_at) "
        "WHERE state = 'delivered'",
    ]),
    # The abandoned-calls total of /metrics and /v1/status (calls.count_abandoned) counts
    # these rows only, not every call ever stored, at each scrape.
    (5, "abandoned calls", [
        "CREATE INDEX calls_abandoned ON calls (id) WHERE direction = 'inbound' "
        "AND status = 'missed' AND disposition = 'abandoned'",
    ]),
    # GET /v1/attachments/{sha256} serves only attachments some case lists
    # (gateway/store/attachment_index.py); existing cases are indexed by the backfill.
    (6, "attachments of cases", [
        """CREATE TABLE case_attachments (
            sha256 TEXT NOT NULL,
            case_id {bigint} NOT NULL,
            file_name TEXT NOT NULL,
            media_type TEXT NOT NULL,
            size {bigint} NOT NULL,
            PRIMARY KEY (sha256, case_id)
        )""",
        "CREATE INDEX case_attachments_case ON case_attachments (case_id)",
    ]),
    # Statuses the case platform sends back (gateway/store/statuses.py): a history per
    # case, one row per (case, status, time) so a repeated update is the same entry.
    (7, "case statuses", [
        """CREATE TABLE case_statuses (
            id {id},
            case_id {bigint} NOT NULL,
            case_code TEXT NOT NULL,
            status TEXT NOT NULL,
            at {real} NOT NULL,
            at_text TEXT NOT NULL,
            department TEXT,
            text TEXT,
            category TEXT,
            origin TEXT NOT NULL,
            received_at {real} NOT NULL,
            UNIQUE (case_id, status, at)
        )""",
        "CREATE INDEX case_statuses_code ON case_statuses (case_code, at)",
        "CREATE INDEX case_statuses_status ON case_statuses (status, case_id)",
    ]),
    # The look-up by case code (gateway/store/lookup.py): per case what a citizen's
    # question is matched against, keyed digests only (never the digits or the address
    # in clear), and what the answer shows besides the statuses. Cases filed before this
    # migration are filled at start-up (lookup.backfill), under the identifier key.
    (8, "look-up by case code", [
        """CREATE TABLE case_lookup (
            case_id {bigint} PRIMARY KEY,
            case_code TEXT NOT NULL UNIQUE,
            channel TEXT NOT NULL,
            received_at {real} NOT NULL,
            phone_last4 TEXT,
            email TEXT
        )""",
    ]),
    # What went back to the citizen (gateway/store/citizen_notices.py): one row per (case
    # code, channel), so a retried outbox entry never sends twice; the recipient only as
    # a keyed digest (gateway/support/keyed_ids.py), for the at-most-one-per-interval rule.
    (9, "citizen notices", [
        """CREATE TABLE citizen_notices (
            case_code TEXT NOT NULL,
            channel TEXT NOT NULL,
            state TEXT NOT NULL,
            reason TEXT,
            recipient_key TEXT NOT NULL,
            at {real} NOT NULL,
            ref TEXT,
            PRIMARY KEY (case_code, channel)
        )""",
        "CREATE INDEX citizen_notices_recipient ON citizen_notices (channel, recipient_key, at)",
    ]),
    # Keyed identifiers (issue 18): reporter keys were an unkeyed 64-bit hash of the phone
    # number or address, reversible by trying every mobile number. They are deleted; the
    # cases they belonged to wait in dedup_rekey until the gateway, which holds
    # privacy.identifier_key, files them again from their documents (Deduplicator.rekey).
    # The access log (gateway/store/audit.py): who read which case, never personal fields.
    (10, "keyed reporter keys, access log", [
        "CREATE TABLE dedup_rekey (case_id {bigint} PRIMARY KEY)",
        "INSERT INTO dedup_rekey (case_id) SELECT DISTINCT case_id FROM dedup_reporters",
        "DELETE FROM dedup_reporters",
        """CREATE TABLE audit_log (
            id {id},
            at {real} NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT
        )""",
        "CREATE INDEX audit_log_at ON audit_log (at)",
    ]),
    # Personal data (gateway/store/retention.py, gateway/store/erasure.py): when a case's
    # personal fields were removed, attachment files waiting to be deleted once their
    # transaction committed, and the tombstones of erased submissions (keyed hashes only).
    (11, "retention and erasure", [
        "ALTER TABLE cases ADD COLUMN stripped_at {real}",
        "CREATE INDEX cases_unstripped ON cases (updated_at) WHERE stripped_at IS NULL",
        "CREATE INDEX outbox_case ON outbox (case_id)",
        """CREATE TABLE attachment_deletions (
            sha256 TEXT PRIMARY KEY,
            queued_at {real} NOT NULL
        )""",
        """CREATE TABLE erasure_tombstones (
            key_hash TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            erased_at {real} NOT NULL,
            reason TEXT NOT NULL,
            operator TEXT NOT NULL
        )""",
    ]),
    # Feed positions from transaction ids when several writers share the store (PostgreSQL,
    # gateway/store/cases.py): one row, filled by the backfill; empty on SQLite.
    (12, "feed positions without a shared counter", [
        "CREATE TABLE feed_origin (xact_origin {bigint} NOT NULL, base {bigint} NOT NULL)",
    ]),
    # Calls that never became a case (missed calls counted for the KPIs, notes whose call
    # never came) keep the caller number and joined fields until the retention purge
    # strips them (gateway/store/retention.py), marked here; an update unmarks the call.
    (13, "retention of calls without a case", [
        "ALTER TABLE calls ADD COLUMN stripped_at {real}",
        "CREATE INDEX calls_caseless ON calls (updated_at) "
        "WHERE case_id IS NULL AND stripped_at IS NULL",
    ]),
]

KNOWN = frozenset(version for version, _, _ in MIGRATIONS)  # what this gateway can apply

# Data a migration derives from what is stored already, run right after its statements.
BACKFILLS: dict[int, Callable[[Tx], None]] = {
    6: attachment_index.backfill,
    12: cases.start_feed_positions,
}


# Table options only one engine has; empty elsewhere.
_SLOTS: dict[str, dict[str, str]] = {
    "sqlite": {"without_rowid": " WITHOUT ROWID"},
    "postgresql": {"without_rowid": ""},
}


class SchemaTooNew(GatewayError):
    """The store has migrations this gateway does not know: a newer version applied them.

    Why refuse: replicas (and worker groups, and ``minsheng`` commands) must all run the
    same version. An older one would write rows the newer schema reads differently, or
    miss what the newer version relies on, without any error to show it."""

    def __init__(self, unknown: list[int], known: int) -> None:
        self.unknown = unknown
        newest = max(unknown)
        super().__init__(
            f"存储的结构版本为 {newest}，比本网关所知的 {known} 新：请升级此实例 "
            f"(the store's schema is at version {newest}, newer than this gateway's "
            f"{known}: a newer gateway migrated it; upgrade this one)")


def migrate(tx: Tx) -> list[int]:
    """Apply what is missing, in order; return the versions applied now. Refuse a store
    a newer gateway migrated (``SchemaTooNew``)."""
    tx.lock_intake()  # two replicas starting together do not both migrate
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at "
        + tx.dialect.types["real"] + " NOT NULL)"
    )
    done = {row[0] for row in tx.fetchall("SELECT version FROM schema_migrations")}
    unknown = sorted(done - KNOWN)
    if unknown:
        raise SchemaTooNew(unknown, max(KNOWN))
    slots = {**tx.dialect.types, **_SLOTS.get(tx.dialect.name, {})}
    applied = []
    for version, name, statements in MIGRATIONS:
        if version in done:
            continue
        for statement in statements:
            tx.execute(statement.format(**slots))
        if version in BACKFILLS:
            BACKFILLS[version](tx)
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (version, name, time.time()),
        )
        applied.append(version)
    return applied
