"""Dedup at intake: replays, exact duplicates, repeats, related complaints, hot topics.

- **replay**: the same source with the same ``source_ref`` (a retried webhook, a mail
  fetched twice) or the same ``Idempotency-Key`` (``replay_keys``): no new case.
- **exact duplicate**: the same reporter, identical normalized content (text, subject and
  attachments) within ``exact_window_hours``: no new case either; answered as a replay.
- **repeat**: the same reporter (a phone number, an e-mail address or a handle, on any
  channel) about near-identical matter within the window: a new case, ``repeat_of`` the
  earliest such case (or the case that one repeats).
- **related**: other reporters, near-identical text: a new case in the matched case's
  cluster; the first related case opens the cluster and stamps the matched case with it.
- **new**: otherwise.

``Deduplicator.fingerprint`` does the text work (normalization, shingles, MinHash) before
the transaction; ``decide`` and ``record`` run inside the intake transaction, holding
the reporter's lock (``pipeline.reporter_locks``), on rows of the store
(``gateway.store.dedup_index``), so replicas share one index and memory does not grow
with the number of cases. When a cluster gains ``hot_topic_cases`` cases within
``hot_topic_hours``, a hot-topic event is queued for the sinks that ask for events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.dedup.similarity import (
    MAX_CHARS,
    TextProfile,
    band_keys,
    compact,
    key_hash,
    minhash_text,
    similarity,
)
from gateway.model.schema import Complaint, ComplaintDraft, DedupInfo, RawRecord
from gateway.store import Tx, cases, outbox
from gateway.store import dedup_index as idx
from gateway.store.dedup_index import Entry
from gateway.support.confidential import masked_text_of
from gateway.support.config import DedupConfig
from gateway.support.keyed_ids import IdentifierKeys, IdKind, ephemeral_keys
from gateway.support.logging import get_logger, mask_text

log = get_logger("gateway.dedup")

REPORTER_LIMIT = 50  # a reporter's latest cases compared for duplicates and repeats
CANDIDATE_LIMIT = 100  # band-key candidates compared for related cases
SNIPPET_CHARS = 200

UpdateCase = Callable[[Tx, int, Complaint], None]


def replay_keys(raw: RawRecord, draft: ComplaintDraft) -> list[str]:
    """The keys under which this item is filed: its source_ref (as the normalizer read it:
    a web form's ``submission_id``, a mail's Message-ID) and the Idempotency-Key."""
    keys = [f"ref:{draft.source_ref}"]
    if raw.idempotency_key:
        keys.append(f"idem:{raw.idempotency_key}")
    return keys


def reporter_keys(draft: ComplaintDraft) -> list[str]:
    """Who the reporter is, across channels: ``tel:`` E.164 number, ``mail:`` lower-cased
    address, ``handle:`` site/handle of a public post."""
    reporter, keys = draft.reporter, []
    phone = reporter.phone or (draft.call.caller if draft.call else None)
    if phone and phone.startswith("+"):
        keys.append(f"tel:{phone}")
    if reporter.email:
        keys.append(f"mail:{reporter.email.strip().lower()}")
    if reporter.handle:
        site = (draft.post.site or "") if draft.post else ""
        keys.append(f"handle:{site.lower()}/{reporter.handle.strip().lower()}")
    return keys


@dataclass(frozen=True)
class Fingerprint:
    """What dedup needs of a draft, computed before the transaction."""

    at: float  # received_at, epoch seconds
    content_hash: int  # exact content: normalized subject, text and attachment digests
    length: int  # normalized characters compared
    signature: bytes  # compact MinHash; empty when the text has nothing to compare
    bands: tuple[int, ...]
    reporters: dict[int, str]  # keyed reporter digest (current key) → the key (in memory only)
    # every accepted key's digest → the key: what matching looks for, so an entry filed
    # under a key being rotated out is still found (docs/personal-data.md)
    lookup: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    info: DedupInfo = field(default_factory=DedupInfo)
    duplicate_of: Entry | None = None  # an exact duplicate: no new case
    matched: Entry | None = None
    shared_key: str | None = None
    opens_cluster: bool = False  # the matched case starts the cluster now


class Deduplicator:
    """Dedup decisions of one gateway, from the ``dedup:`` config section."""

    def __init__(self, config: DedupConfig | None = None, event_sinks: Sequence[str] = (),
                 keys: IdentifierKeys | None = None) -> None:
        self.config = config or DedupConfig()
        # Reporter keys are filed as HMAC digests under ``privacy.identifier_key``; without
        # keys (a test, a dry run) a random in-memory key: nothing it files outlives it.
        self.keys = keys or ephemeral_keys()
        self.profile = TextProfile(self.config.shingle_size, self.config.boilerplate)
        self.event_sinks = list(event_sinks)
        self.window_s = self.config.window_days * 86400
        self._since_prune = 0

    # -- before the transaction ---------------------------------------------------------

    def fingerprint(self, draft: ComplaintDraft) -> Fingerprint:
        if not self.config.enabled:
            return Fingerprint(draft.received_at.timestamp(), 0, 0, b"", (), {}, {})
        address = draft.location.address if draft.location else None
        text = "\n".join(part for part in (draft.body, address) if part)
        whole = self.profile.normalize(text, None)
        # The gateway's own words (a missed call's callback text) say nothing about the
        # matter: every missed call would look related to every other one. They count
        # for exact duplicates of one reporter only.
        normalized = "" if draft.text_is_generated else whole[:MAX_CHARS]
        signature: bytes = b""
        bands: tuple[int, ...] = ()
        if normalized:  # it has shingles
            values = minhash_text(normalized, self.profile.shingle_size)
            signature, bands = compact(values), tuple(band_keys(values))
        exact = "\x1f".join([self.profile.normalize(draft.subject, None), whole,
                             *sorted(a.sha256 for a in draft.attachments)])
        # Each reporter's digest under every accepted key, current first (one MAC each).
        digests = [(k, self.keys.candidates64(IdKind.TEXT, k)) for k in reporter_keys(draft)]
        return Fingerprint(
            at=draft.received_at.timestamp(), content_hash=key_hash(exact),
            length=len(normalized), signature=signature, bands=bands,
            reporters={found[0]: k for k, found in digests},
            lookup={d: k for k, found in digests for d in found},
        )

    # -- inside the transaction ---------------------------------------------------------

    def read_ahead(self, tx: Tx, fp: Fingerprint) -> None:
        """Send the reads ``decide`` will make, so that on PostgreSQL they come back with
        the next read of the unit in one wait, not a wait each (``Tx.read_ahead``)."""
        if not self.config.enabled:
            return
        since = fp.at - self.window_s
        if fp.lookup:
            tx.read_ahead(*idx.by_reporters_query(list(fp.lookup), since, REPORTER_LIMIT))
        if fp.length >= self.config.min_chars and fp.bands:
            tx.read_ahead(*idx.by_bands_query(tx.dialect, fp.bands, since, CANDIDATE_LIMIT))

    def decide(self, tx: Tx, fp: Fingerprint) -> Decision:
        """Duplicate, repeat, related or new, against the index (call holding the
        reporter's locks)."""
        if not self.config.enabled:
            return Decision()
        since = fp.at - self.window_s
        mine = idx.by_reporters(tx, list(fp.lookup), since, REPORTER_LIMIT)
        return (self._duplicate(fp, mine) or self._repeat(fp, mine)
                or self._related(tx, fp, since, {e.case_id for _, e in mine}))

    def _duplicate(self, fp: Fingerprint, mine: list[tuple[int, Entry]]) -> Decision | None:
        limit = self.config.exact_window_hours * 3600
        for key, entry in mine:
            if entry.content_hash == fp.content_hash and abs(fp.at - entry.at) <= limit:
                info = DedupInfo(kind="repeat", repeat_of=entry.repeat_of or entry.case_code,
                                 cluster_id=entry.cluster_id, similarity=1.0)
                return Decision(info, entry, entry, fp.lookup[key])
        return None

    def _repeat(self, fp: Fingerprint, mine: list[tuple[int, Entry]]) -> Decision | None:
        scored = [(similarity(fp.signature, e.signature), key, e) for key, e in mine]
        matches = [m for m in scored if m[0] >= self.config.repeat_threshold]
        if not matches:
            return None
        matches.sort(key=lambda m: (m[2].at, m[2].case_id))
        score, key, first = matches[0]
        cluster = next((e.cluster_id for _, _, e in matches if e.cluster_id), None)
        info = DedupInfo(kind="repeat", repeat_of=first.repeat_of or first.case_code,
                         cluster_id=cluster, similarity=round(score, 3))
        return Decision(info, matched=first, shared_key=fp.lookup[key])

    def _related(self, tx: Tx, fp: Fingerprint, since: float, mine: set[int]) -> Decision:
        """The most similar case of another reporter; one already in a cluster first, so
        a matter keeps one cluster."""
        if fp.length < self.config.min_chars or not fp.bands:
            return Decision()
        matches = []
        for entry in idx.by_bands(tx, fp.bands, since, CANDIDATE_LIMIT):
            if entry.case_id in mine:  # the same reporter, not similar enough for a repeat
                continue
            score = similarity(fp.signature, entry.signature)
            if score >= self.config.threshold:
                matches.append((entry.cluster_id is not None, score, entry.case_id, entry))
        if not matches:
            return Decision()
        _, score, _, entry = max(matches, key=lambda m: m[:3])
        cluster = entry.cluster_id or f"CL-{entry.case_code}"
        info = DedupInfo(kind="related", cluster_id=cluster, similarity=round(score, 3))
        return Decision(info, matched=entry, opens_cluster=entry.cluster_id is None)

    def record(
        self, tx: Tx, case_id: int, case_code: str, fp: Fingerprint, decision: Decision,
        update_case: UpdateCase,
    ) -> None:
        """File a new case in the index; grow its cluster, maybe raise a hot topic, and now
        and then prune what left the window. ``update_case`` re-forwards a matched case
        that a related case puts in a new cluster."""
        if not self.config.enabled:
            return
        info, matched = decision.info, decision.matched
        link = idx.Link(
            case_code, fp.at, info.kind, info.cluster_id, info.repeat_of,
            matched.case_code if matched else None, info.similarity,
            mask_text(decision.shared_key) if decision.shared_key else None,
        )
        idx.insert_entry(tx, case_id, link, fp.content_hash, fp.signature, fp.bands)
        idx.insert_keys(tx, case_id, fp.bands, list(fp.reporters))
        if info.cluster_id and matched is not None:
            self._join(tx, info.cluster_id, matched, decision.opens_cluster, case_code, fp.at,
                       update_case)
        self._since_prune += 1
        if self._since_prune >= self.config.prune_every:
            self._since_prune = 0
            self.prune(tx, time.time(), 2 * self.config.prune_every)

    def refile(self, tx: Tx, case_id: int, fp: Fingerprint) -> None:
        """A filed case's text changed (the notes of a call came or were corrected): find
        it from now on by its new text and reporter. Its own decision stays."""
        if self.config.enabled:
            idx.refile(tx, case_id, fp.content_hash, fp.signature, fp.bands, list(fp.reporters))

    def _join(
        self, tx: Tx, cluster_id: str, matched: Entry, opens: bool, case_code: str, at: float,
        update_case: UpdateCase,
    ) -> None:
        if opens:
            idx.set_cluster(tx, matched.case_id, cluster_id)
            # Later units may have read the matched case's entry unclustered; the update
            # changes no read's rows but that entry's.
            tx.drop_reads_ahead(holding=matched.case_id)
            text = stamp_cluster(tx, matched.case_id, cluster_id, update_case)
            idx.open_cluster(tx, cluster_id, matched, " ".join(text.split())[:SNIPPET_CHARS])
        idx.grow_cluster(tx, cluster_id, case_code, at)
        self._hot_topic(tx, cluster_id, at)

    def _hot_topic(self, tx: Tx, cluster_id: str, at: float) -> None:
        since = at - self.config.hot_topic_hours * 3600
        count = idx.cluster_count_since(tx, cluster_id, since)
        if count < self.config.hot_topic_cases:
            return
        cluster = idx.get_cluster(tx, cluster_id)
        if cluster is None or (cluster.hot_at is not None and cluster.hot_at >= since):
            return  # raised already within this period
        total = idx.mark_hot(tx, cluster_id, at)
        payload = hot_topic_payload(cluster, count, self.config.hot_topic_hours, at)
        if self.event_sinks:
            outbox.enqueue(tx, self.event_sinks, None, kind="event",
                           payload=json.dumps(payload, ensure_ascii=False))
        log.info("hot_topic", cluster_id=cluster_id, count=count, events_total=total)

    def rekey(self, tx: Tx, limit: int = 200) -> int:
        """File up to ``limit`` cases that migration 10 left without reporter keys (their
        unkeyed hashes were deleted) under keyed digests again, from the reporter their
        stored case document names; returns how many were done (0: nothing left)."""
        tx.lock_intake()  # replicas starting together do not file a case twice
        case_ids = idx.pending_rekey(tx, limit)
        for case_id in case_ids:
            row = cases.get_by_id(tx, case_id)
            if row is None:
                continue
            draft = Complaint.model_validate_json(row.document)
            digests = sorted({self.keys.digest64(IdKind.TEXT, k) for k in reporter_keys(draft)})
            idx.insert_keys(tx, case_id, (), digests)
        idx.rekey_done(tx, case_ids)
        return len(case_ids)

    def prune(self, tx: Tx, now: float, limit: int = 1000) -> int:
        """Drop up to ``limit`` entries older than the window; returns how many."""
        return idx.prune(tx, now - self.window_s, limit)


def hot_topic_payload(cluster: idx.Cluster, count: int, hours: float, at: float) -> dict[str, Any]:
    return {
        "type": "hot_topic",
        "cluster_id": cluster.cluster_id,
        "count": count,
        "window_hours": hours,
        "first_case_code": cluster.first_code,
        "latest_case_code": cluster.latest_code,
        "representative_text": cluster.snippet,
        "detected_at": datetime.fromtimestamp(at, UTC).isoformat(),
    }


def stamp_cluster(tx: Tx, case_id: int, cluster_id: str, update_case: UpdateCase) -> str:
    """Put an already filed case in a cluster and forward it again (outbox ``update``);
    returns its text (a confidential case's masked: it becomes the cluster's snippet)."""
    row = cases.get_by_id(tx, case_id)
    if row is None:
        return ""
    complaint = Complaint.model_validate_json(row.document)
    dedup = complaint.dedup.model_copy(update={"cluster_id": cluster_id})
    update_case(tx, case_id, complaint.model_copy(update={"dedup": dedup}))
    if complaint.confidential:  # the snippet is shown on /ops, in reports and hot topics
        return masked_text_of(json.loads(row.document), complaint.body)
    return complaint.body
