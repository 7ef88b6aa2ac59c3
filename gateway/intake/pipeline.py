"""The intake pipeline: normalize → validate → dedup → case code → commit → answer.

The raw record, the case and one outbox entry per sink are committed in one
group-committed transaction, before the source gets its answer: nothing is
acknowledged before it is durable, and nothing is half-stored. The raw record is
journaled whatever happens to it: rejected (with the reasons), quarantined (when the
normalizer breaks), replayed (pointing at the existing case) or accepted.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from gateway.dedup import deduplicator as dedup
from gateway.dedup.deduplicator import Decision, Deduplicator, Fingerprint
from gateway.intake.ports import AdapterServices
from gateway.intake.shared_buckets import BucketArena
from gateway.model.casecode import format_code
from gateway.model.errors import FieldError, Rejected
from gateway.model.input_limits import InputLimits, WithLimits, kept_of_refused
from gateway.model.normalize import Normalizer, NormalizerContext
from gateway.model.schema import Complaint, ComplaintDraft, RawRecord
from gateway.model.validation import validate_draft
from gateway.store import ReadAhead, Store, Tx, cases, erasure, journal, lookup, outbox, quarantine
from gateway.store.cases import CaseRow
from gateway.store.services import StoreServices
from gateway.support.keyed_ids import IdentifierKeys
from gateway.support.logging import get_logger

log = get_logger("gateway.intake")

# Payloads above this size are normalized on a worker thread, off the event loop.
INLINE_NORMALIZE_BYTES = 64 * 1024
R = TypeVar("R")
# Optional Complaint fields: classification, routing, due_at, confidential (by a rule).
Hints = dict[str, Any]


async def run_parser(fn: Callable[[RawRecord, NormalizerContext], R], raw: RawRecord,
                     context: NormalizerContext) -> R:
    """``fn(raw, context)``: inline for a small payload, on a worker thread for a big one
    (a long mail, a page), so the event loop never waits on it."""
    if len(raw.payload) <= INLINE_NORMALIZE_BYTES:
        return fn(raw, context)
    return await asyncio.to_thread(fn, raw, context)


def failure_detail(exc: BaseException) -> dict[str, Any]:
    """What the quarantine keeps of a normalizer or parser that broke (call in ``except``)."""
    return {"error": repr(exc), "traceback": traceback.format_exc(limit=8)}


# What became of one raw record. The pipeline answers new, repeat, related, replay,
# rejected or quarantined; a flow of an adapter's own (phone calls joined per call) also
# updated, recorded or ignored; an item an adapter's filter set aside is filtered.
Outcome = Literal["new", "repeat", "related", "replay", "rejected", "quarantined",
                  "updated", "recorded", "ignored", "filtered", "erased"]


@dataclass(frozen=True)
class IntakeResult:
    """What became of one raw record; ``as_json`` is the answer a pushing source gets."""

    outcome: Outcome
    raw_id: int
    case_code: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    quarantine_id: int | None = None
    repeat_of: str | None = None
    cluster_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"outcome": self.outcome}
        if self.case_code:
            body["case_code"] = self.case_code
        if self.repeat_of:
            body["repeat_of"] = self.repeat_of
        if self.cluster_id:
            body["cluster_id"] = self.cluster_id
        if self.quarantine_id is not None:
            body["quarantine_id"] = self.quarantine_id
        return body


@dataclass
class SourceBinding:
    """How records of one source are normalized."""

    normalizer: Normalizer
    context: NormalizerContext


# A source's own intake flow: takes a raw record, answers like the intake does.
Flow = Callable[[RawRecord], Awaitable[IntakeResult]]


@dataclass(frozen=True)
class _Journal:
    """Where a record's outcome is written: a new journal row, or, when a quarantined
    record is retried, its existing row and quarantine entry."""

    raw: RawRecord
    raw_id: int | None = None
    quarantine_id: int | None = None

    def write(self, tx: Tx, status: str, detail: Any = None, case_id: int | None = None) -> int:
        if self.raw_id is None:
            return journal.insert_raw(tx, self.raw, status, detail, case_id)
        journal.set_outcome(tx, self.raw_id, status, case_id, detail)
        return self.raw_id

    def quarantine(self, tx: Tx, raw_id: int, reason: str, detail: Any) -> int:
        if self.quarantine_id is None:
            return quarantine.add(tx, self.raw.source, raw_id, reason, detail)
        quarantine.update(tx, self.quarantine_id, reason, detail)
        return self.quarantine_id

    def resolve(self, tx: Tx, resolution: str) -> None:
        if self.quarantine_id is not None:
            quarantine.resolve(tx, self.quarantine_id, resolution)


@dataclass(frozen=True)
class _Prepared:
    """A submission ready for the writer: the text work (fingerprint, routing hints) and
    the statement of its first read done outside the transaction."""

    entry: _Journal
    draft: ComplaintDraft
    fp: Fingerprint
    hints: Hints
    keys: list[str]  # its replay keys
    filed: erasure.FiledQuery

    def locks(self) -> list[str]:
        return [*replay_locks(self.entry.raw.source, self.keys), *reporter_locks(self.fp)]


def replay_locks(source: str, keys: list[str]) -> list[str]:
    """Lock names of a record's replay keys: the same item arriving at two replicas at
    once is filed once (the second waits, then finds the first's key)."""
    return [f"replay:{source}:{key}" for key in keys]


def reporter_locks(fp: Fingerprint) -> list[str]:
    """Lock names of a draft's (hashed) reporters: one reporter's submissions are
    decided one after another across replicas (exact duplicates, repeats). Related
    complaints of other reporters are not serialised: two arriving at two replicas at
    the same moment may both be filed as new (docs/dedup.md)."""
    return [f"reporter:{key}" for key in fp.reporters]


class Intake:
    def __init__(
        self,
        store: Store,
        *,
        region: str,
        timezone: ZoneInfo,
        sinks: list[str],
        bindings: dict[str, SourceBinding],
        save_blobs: Callable[[Mapping[str, bytes]], None] | None = None,
        dedup: Deduplicator | None = None,
        buckets: BucketArena | None = None,
    ) -> None:
        self.store = store
        # What adapters may ask of the store (they never import it): gateway.intake.ports.
        self.services: AdapterServices = StoreServices(store, lambda: self.identifier_keys)
        self.dedup = dedup or Deduplicator()
        self.region = region
        self.timezone = timezone
        self.sinks = sinks
        self.bindings = bindings
        self.save_blobs = save_blobs
        self.on_enqueued: Callable[[], None] = lambda: None  # wakes the forwarder
        self.counts: dict[tuple[str, str], int] = {}
        # Sources whose records take a flow of their own (phone calls joined per call):
        # ``reprocess`` hands their quarantined records back to it.
        self.flows: dict[str, Flow] = {}
        # Routing hints (classification, routing, due_at) of a draft; never raises
        # (gateway/routing/hints.py). None: the gateway files cases without hints.
        self.hints: Callable[[ComplaintDraft], Hints] | None = None
        # The identifier keys (gateway/support/keyed_ids.py) the look-up rows of every
        # filed case and the tombstones of erased submissions are made with; None (a bare
        # intake in tests): no look-up rows (the gateway's start-up fills them) and no
        # replay checked against erasures.
        self.identifier_keys: IdentifierKeys | None = None
        # The rate limits' memory (gateway/intake/shared_buckets.py): a worker group's
        # shared arena, else this intake's own.
        self.buckets = buckets or BucketArena()

    async def submit(
        self, raw: RawRecord, *, quarantine_rejects: bool = False,
        blobs: Mapping[str, bytes] | None = None, draft: ComplaintDraft | None = None,
    ) -> IntakeResult:
        """Take one raw record through the pipeline. Never raises for bad input.

        ``quarantine_rejects`` is for pulled items: nobody is there to read a 4xx, so a
        rejected item is also put in the quarantine, where operations see it. ``blobs``
        are attachment bytes the adapter took out of the raw record (keyed by sha256):
        they are kept unless the record is rejected, so a refused form leaves no files.
        ``draft``: the record as its normalizer already read it (an adapter that looked at
        it first, e.g. for relevance), so it is not normalized twice; it is validated.
        """
        return await self._process(raw, quarantine_rejects, _Journal(raw), blobs or {}, draft)

    async def record_rejection(self, raw: RawRecord, rejection: Rejected) -> IntakeResult:
        """Journal a record an adapter refused before normalizing (e.g. a file too big)."""
        entry = _Journal(raw)
        result = await self.store.write(lambda tx: self._reject(tx, entry, rejection, False))
        self.count(raw.source, result.outcome)
        return result

    async def record_filtered(self, raw: RawRecord, detail: dict[str, Any]) -> int:
        """Journal an item an adapter's filter says is no complaint (an auto-reply, a post
        off the district's topics): kept with the reason and counted, but no case."""
        raw_id = await self.store.write(
            lambda tx: journal.insert_raw(tx, raw, journal.FILTERED, detail)
        )
        self.count(raw.source, "filtered")
        log.info("intake", source=raw.source, outcome=journal.FILTERED, raw_id=raw_id,
                 reason=detail.get("reason"))
        return raw_id

    async def reprocess(self, quarantine_id: int) -> IntakeResult:
        """Run a quarantined record through the pipeline again (after a fix).

        The journal row and the quarantine entry are reused: success resolves the entry,
        another failure updates its reason; nothing is duplicated.
        """
        entries = await self.store.read(lambda tx: quarantine.list_open(tx, [quarantine_id]))
        if not entries or entries[0].raw_id is None:
            raise LookupError(f"quarantine entry {quarantine_id} has no journaled record to retry")
        raw_id = entries[0].raw_id
        found = await self.store.read(lambda tx: journal.get(tx, raw_id))
        if found is None:
            raise LookupError(f"journal record {raw_id} is missing")
        flow = self.flows.get(found.record.source)
        if flow is not None:
            return await self._reprocess_in_flow(flow, found.record, raw_id, quarantine_id)
        retry = _Journal(found.record, raw_id, quarantine_id)
        return await self._process(found.record, True, retry, {})

    async def _reprocess_in_flow(
        self, flow: Flow, record: RawRecord, raw_id: int, quarantine_id: int
    ) -> IntakeResult:
        """A source with a flow of its own (phone calls) takes the record again as if it
        had just arrived; the old journal row is marked superseded and its quarantine entry
        resolved, so nothing stays open twice."""
        result = await flow(record)
        new_raw_id, case_code = result.raw_id, result.case_code
        resolution = f"retried as raw:{new_raw_id}: {result.outcome} {case_code or ''}".strip()

        def close(tx: Tx) -> None:
            journal.set_outcome(tx, raw_id, journal.SUPERSEDED, None, {"by": new_raw_id})
            quarantine.resolve(tx, quarantine_id, resolution)

        await self.store.write(close)
        return IntakeResult(result.outcome, new_raw_id, case_code=case_code)

    async def _process(
        self, raw: RawRecord, quarantine_rejects: bool, entry: _Journal,
        blobs: Mapping[str, bytes], normalized: ComplaintDraft | None = None,
    ) -> IntakeResult:
        try:
            draft = normalized or await self.normalize(raw)
            validate_draft(draft)
        except Rejected as exc:
            rejection = exc
            result = await self.store.write(
                lambda tx: self._reject(tx, entry, rejection, quarantine_rejects)
            )
        except Exception as exc:  # a normalizer bug: keep the record, let operations retry
            log.error("normalizer_failed", source=raw.source, error=repr(exc))
            detail = failure_detail(exc)
            await self._keep(blobs)  # the record must be retryable with its attachments
            result = await self.store.write(lambda tx: self._quarantine(tx, entry, detail))
        else:
            files = {**blobs, **draft.blobs}
            # With files, whether the submission was erased is asked before they are kept
            # (an erased person's attachments must not come back); without, the commit's
            # transaction asks it (``_commit``), saving a read and its thread hop.
            if files and await self._erased_before(raw, draft):
                result = await self.store.write(lambda tx: self._erased(tx, entry))
            else:
                await self._keep(files)
                ready = self.prepare(entry, draft)
                result = await self.store.write(lambda tx: self._commit(tx, ready),
                                                self._read_ahead(ready))
            if result.outcome == "erased":
                self.count(raw.source, result.outcome)
                log.info("intake", source=raw.source, outcome=result.outcome,
                         raw_id=result.raw_id)
                return result
            if result.outcome in ("new", "repeat", "related"):
                self.on_enqueued()
        self.count(raw.source, result.outcome)
        log.info(
            "intake", source=raw.source, outcome=result.outcome, case_code=result.case_code,
            raw_id=result.raw_id,
        )
        return result

    # -- steps ---------------------------------------------------------------------

    async def _keep(self, blobs: Mapping[str, bytes]) -> None:
        if blobs and self.save_blobs is not None:
            await asyncio.to_thread(self.save_blobs, blobs)

    async def normalize(self, raw: RawRecord) -> ComplaintDraft:
        """The source's normalizer on ``raw`` (big payloads on a worker thread); raises
        what the normalizer raises. Adapters use it to look at an item before intake."""
        binding = self.bindings[raw.source]
        return await run_parser(binding.normalizer, raw, binding.context)

    async def _erased_before(self, raw: RawRecord, draft: ComplaintDraft) -> bool:
        """Whether this submission was erased at its person's request (a tombstone of one
        of its replay keys, gateway/store/erasure.py): it must not be filed again."""
        keys = self.identifier_keys
        if keys is None:
            return False
        replay = dedup.replay_keys(raw, draft)
        return await self.store.read(lambda tx: erasure.is_erased(tx, keys, raw.source, replay))

    def prepare(self, entry: _Journal, draft: ComplaintDraft) -> _Prepared:
        """What can be done for a valid draft before its transaction, on the event loop:
        dedup's text work and the routing hints (classification, routing, due_at)."""
        keys = dedup.replay_keys(entry.raw, draft)
        return _Prepared(entry, draft, self.dedup.fingerprint(draft), self.hints_of(draft),
                         keys, erasure.filed_query(self.identifier_keys, entry.raw.source, keys))

    def _read_ahead(self, ready: _Prepared) -> ReadAhead:
        """The reads of ``_commit_unit`` (whether the submission was filed or erased; the
        dedup candidates), to be sent with the other submissions' of its batch. They
        return rows filed under its replay keys, its reporter and its band keys only."""
        locks = ready.locks()
        bands = (f"band:{key}" for key in ready.fp.bands)

        def send(tx: Tx) -> None:
            ready.filed.send_ahead(tx)
            self.dedup.read_ahead(tx, ready.fp)

        return ReadAhead(tuple(locks), frozenset([*locks, *bands]), send)

    def _erased(self, tx: Tx, entry: _Journal) -> IntakeResult:
        """Journal a replay of an erased submission without its content (an empty stub,
        so a pulled source does not fetch it again) and answer ``erased``."""
        raw_id = replace(entry, raw=entry.raw.without_content()).write(tx, journal.ERASED)
        entry.resolve(tx, "erased")
        return IntakeResult("erased", raw_id)

    def _reject(
        self, tx: Tx, entry: _Journal, rejection: Rejected, to_quarantine: bool
    ) -> IntakeResult:
        if not to_quarantine and entry.raw_id is None:  # a pusher was told 4xx: keep a cap
            entry = replace(entry, raw=kept_of_refused(
                entry.raw, self.refused_keep_bytes(entry.raw.source)))
        raw_id = entry.write(tx, journal.REJECTED, rejection.as_list())
        qid = None
        if to_quarantine:
            qid = entry.quarantine(tx, raw_id, "rejected", rejection.as_list())
        return IntakeResult("rejected", raw_id, errors=rejection.errors, quarantine_id=qid)

    def refused_keep_bytes(self, source: str) -> int:
        """How much of a refused body of ``source`` the journal keeps (its
        ``limits.refused_keep_kb``)."""
        binding = self.bindings.get(source)
        limits = binding.context.settings(WithLimits).limits if binding else InputLimits()
        return limits.refused_keep_bytes

    def _quarantine(self, tx: Tx, entry: _Journal, detail: dict[str, Any]) -> IntakeResult:
        raw_id = entry.write(tx, journal.QUARANTINED, detail)
        qid = entry.quarantine(tx, raw_id, "normalizer_error", detail)
        return IntakeResult("quarantined", raw_id, quarantine_id=qid)

    def _commit(self, tx: Tx, ready: _Prepared) -> IntakeResult:
        with tx.reading_ahead():  # the dedup reads come back with the replay keys'
            return self._commit_unit(tx, ready)

    def _commit_unit(self, tx: Tx, ready: _Prepared) -> IntakeResult:
        entry, draft, fp, keys = ready.entry, ready.draft, ready.fp, ready.keys
        tx.lock_keys(ready.locks())
        self.dedup.read_ahead(tx, fp)
        existing = ready.filed.read(tx)
        if existing == erasure.ERASED:
            return self._erased(tx, entry)
        detail: dict[str, Any] = {}
        if existing is None:
            decision = self.dedup.decide(tx, fp)
            if decision.duplicate_of is None:
                return self._accept(tx, entry, draft, keys, fp, decision, ready.hints)
            # The same content from the same reporter again: a replay of that case.
            existing = decision.duplicate_of.case_id, decision.duplicate_of.case_code
            cases.add_keys(tx, entry.raw.source, keys, existing[0])
            detail["exact_duplicate"] = True
        case_id, code = existing
        raw_id = entry.write(tx, journal.REPLAY, {"case_code": code, **detail}, case_id)
        entry.resolve(tx, f"replay {code}")
        return IntakeResult("replay", raw_id, case_code=code)

    def _accept(
        self, tx: Tx, entry: _Journal, draft: ComplaintDraft, keys: list[str], fp: Fingerprint,
        decision: Decision, hints: Hints,
    ) -> IntakeResult:
        raw_id = entry.write(tx, journal.ACCEPTED)
        row = self._file(tx, raw_id, draft, keys, fp, decision, hints)
        info = decision.info
        entry.resolve(tx, f"{info.kind} {row.case_code}")
        return IntakeResult(info.kind, raw_id, case_code=row.case_code,
                            repeat_of=info.repeat_of, cluster_id=info.cluster_id)

    def file_case(
        self, tx: Tx, raw_id: int, draft: ComplaintDraft, keys: list[str],
        fingerprint: Fingerprint | None = None,
    ) -> CaseRow:
        """Inside a transaction: give ``draft`` a case code and its dedup decision (repeat,
        related or new), store it under ``keys`` and queue it for every sink. Adapters
        with their own flow (joined phone calls) use it; ``fingerprint`` is computed here
        when not given."""
        fp = fingerprint or self.dedup.fingerprint(draft)
        tx.lock_keys([*replay_locks(draft.source, keys), *reporter_locks(fp)])
        return self._file(tx, raw_id, draft, keys, fp, self.dedup.decide(tx, fp),
                          self.hints_of(draft))

    def _file(
        self, tx: Tx, raw_id: int, draft: ComplaintDraft, keys: list[str], fp: Fingerprint,
        decision: Decision, hints: Hints,
    ) -> CaseRow:
        day = draft.received_at.astimezone(self.timezone).date()
        scope = f"case:{self.region}:{day.isoformat()}:{draft.channel}"
        code = format_code(self.region, day, draft.channel, cases.code_number(tx, scope))
        # A confidential rule (hints) adds to what the citizen or the agent asked for.
        fields = {**dict(draft), **hints, "confidential": draft.confidential
                  or bool(hints.get("confidential"))}
        complaint = Complaint.model_construct(
            **fields, case_code=code, schema_version=1, dedup=decision.info,
            raw_ref=f"raw:{raw_id}",
        )
        row = cases.insert(
            tx, case_code=code, source=draft.source, source_ref=draft.source_ref,
            channel=draft.channel, raw_id=raw_id, document=complaint.model_dump_json(),
        )
        cases.add_keys(tx, draft.source, keys, row.id)
        if self.identifier_keys is not None:
            lookup.record(tx, self.identifier_keys, row.id, complaint, new=True)
        outbox.enqueue(tx, self.sinks, row.id)
        self.dedup.record(tx, row.id, code, fp, decision, self.update_case)
        return row

    def hints_of(self, draft: ComplaintDraft) -> Hints:
        """The routing hint fields of ``draft``'s complaint ({} without hints)."""
        return self.hints(draft) if self.hints is not None else {}

    def update_case(
        self, tx: Tx, case_id: int, complaint: Complaint, draft: ComplaintDraft | None = None,
    ) -> None:
        """Inside a transaction: replace a case's document (e.g. a late call record) and
        forward the update to every sink (outbox kind ``update``). ``draft``: the text or
        the reporter may have changed (new notes), so dedup files the case again by it."""
        cases.update_document(tx, case_id, complaint.model_dump_json())
        if self.identifier_keys is not None:  # a late call record may bring the caller
            lookup.record(tx, self.identifier_keys, case_id, complaint)
        outbox.enqueue(tx, self.sinks, case_id, kind="update")
        if draft is not None:
            self.dedup.refile(tx, case_id, self.dedup.fingerprint(draft))

    def count(self, source: str, outcome: Outcome) -> None:
        """Count one record of ``source`` by what became of it (metrics and status read
        these); adapters that journal records themselves (filtered items) count here too."""
        key = (source, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
