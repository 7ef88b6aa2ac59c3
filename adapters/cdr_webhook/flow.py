"""The phone channel's own flow: one case per call, joined from the call's events.

Each incoming record (a CDR, a CTI event, a status callback, the agent's notes) is one
unit of work in one group-committed transaction, holding the call's lock so replicas
agree: journal the raw record, merge it into the call's state, then decide —

- the call has a case: update the case if its document changed (the update is
  forwarded), else it is a replay;
- answered (or ended) and the notes are there: file the phone complaint;
- missed and ``missed_calls: callback``: file a callback case (回拨) with the number;
- otherwise wait (the answer says what for); a call answered without notes past
  ``notes_timeout_min`` is overdue and reported (``minsheng calls overdue``).

The answer is given only after the commit. ``hotline_stats`` computes the KPIs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from adapters.cdr_webhook import call_store as store_calls
from adapters.cdr_webhook.call_store import CallSummary, KpiRow
from gateway.intake.pipeline import Intake, IntakeResult, failure_detail, run_parser
from gateway.intake.ports import CaseRecord, JournalStatus, Tx
from gateway.model.errors import Rejected
from gateway.model.input_limits import kept_of_refused
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import Complaint, RawRecord
from gateway.model.validation import validate_draft
from gateway.support.logging import get_logger
from normalizers.hotline.call_state import (
    CallEvent,
    CallState,
    citizen_number,
    complaint_draft,
    e164_or_none,
    is_callback,
)

log = get_logger("gateway.calls")
Parser = Callable[[RawRecord, NormalizerContext], CallEvent]
# What a case update may change; the case code, journal reference and dedup stay.
_UPDATED = ("reported_at", "reporter", "subject", "body", "location", "call",
            "category_hint", "tags")


@dataclass(frozen=True)
class CallPolicy:
    missed_calls: Literal["callback", "count"] = "count"
    notes_timeout_s: float = 1800.0


# What became of one phone record (a subset of the intake's outcomes).
CallOutcome = Literal["new", "updated", "replay", "recorded", "ignored", "rejected",
                      "quarantined", "erased"]


@dataclass(frozen=True)
class CallResult(IntakeResult):
    """What became of one phone record: an ``IntakeResult`` (so the flow answers like the
    intake) with the call's own fields; ``as_json`` is the answer the sender gets."""

    call_id: str | None = None
    status: str | None = None
    waiting_for: str | None = None

    def as_json(self) -> dict[str, Any]:
        body = {"outcome": self.outcome, "call_id": self.call_id, "case_code": self.case_code,
                "call_status": self.status, "waiting_for": self.waiting_for,
                "quarantine_id": self.quarantine_id}
        return {k: v for k, v in body.items() if v is not None}


class CallFlow:
    """Joins the records of one source's calls into cases (see the module docstring)."""

    def __init__(self, intake: Intake, source: str, context: NormalizerContext,
                 policy: CallPolicy) -> None:
        self.intake = intake
        self.source = source
        self.context = context
        self.policy = policy

    async def submit(self, raw: RawRecord, parse: Parser) -> CallResult:
        """Take one record through the flow. Never raises for bad input."""
        result = await self._submit(raw, parse)
        self.intake.count(raw.source, result.outcome)  # what metrics and status show
        return result

    async def _submit(self, raw: RawRecord, parse: Parser) -> CallResult:
        store = self.intake.store
        try:
            event = await run_parser(parse, raw, self.context)
        except Rejected as exc:
            refused = exc
            return await store.write(lambda tx: self._reject(tx, raw, refused))
        except Exception as exc:  # a parser bug: keep the record, let operations retry
            log.error("call_parser_failed", source=raw.source, error=repr(exc))
            detail = failure_detail(exc)
            return await store.write(lambda tx: self._quarantine(tx, raw, detail))
        raw = replace(raw, source_ref=event.call_id)
        if event.ignore is not None:
            return await store.write(lambda tx: self._ignore(tx, raw, event))
        try:
            result = await store.write(lambda tx: self._apply(tx, raw, event))
        except Rejected as exc:  # the joined call breaks the standard: refuse this record
            refusal = exc
            return await store.write(lambda tx: self._reject(tx, raw, refusal))
        if result.outcome in ("new", "updated"):
            self.intake.on_enqueued()
        log.info("call_record", source=raw.source, outcome=result.outcome, call_id=event.call_id,
                 case_code=result.case_code, raw_id=result.raw_id)
        return result

    # -- units of work (run on the store's writer thread) ---------------------------------

    def _reject(self, tx: Tx, raw: RawRecord, rejection: Rejected) -> CallResult:
        kept = kept_of_refused(raw, self.intake.refused_keep_bytes(raw.source))
        raw_id = self.intake.services.journal(tx, kept, "rejected", rejection.as_list())
        return CallResult("rejected", raw_id, errors=rejection.errors)

    def _quarantine(self, tx: Tx, raw: RawRecord, detail: dict[str, Any]) -> CallResult:
        raw_id = self.intake.services.journal(tx, raw, "quarantined", detail)
        qid = self.intake.services.quarantine(tx, raw.source, raw_id, "normalizer_error", detail)
        return CallResult("quarantined", raw_id, quarantine_id=qid)

    def _ignore(self, tx: Tx, raw: RawRecord, event: CallEvent) -> CallResult:
        detail = {"call_id": event.call_id, "ignored": event.ignore}
        raw_id = self.intake.services.journal(tx, raw, "filtered", detail)
        return CallResult("ignored", raw_id, call_id=event.call_id)

    def _erased(self, tx: Tx, raw: RawRecord, event: CallEvent) -> CallResult:
        """A record of a call erased at its caller's request (the phone system sent it
        again): journaled without its content, joined to nothing, filed as nothing."""
        raw_id = self.intake.services.journal(tx, raw.without_content(), "erased",
                                              {"call_id": event.call_id})
        return CallResult("erased", raw_id, call_id=event.call_id)

    def _apply(self, tx: Tx, raw: RawRecord, event: CallEvent) -> CallResult:
        # Records of one call are joined one after another, also across replicas; other
        # calls do not wait (the case it files locks its reporter in file_case).
        tx.lock_keys([f"call:{self.source}:{event.call_id}"])
        row = store_calls.get(tx, self.source, event.call_id)
        if row is None and self.intake.services.erased(tx, self.source,
                                                       [f"ref:{event.call_id}"]):
            return self._erased(tx, raw, event)
        before = (CallState.from_json(row.state) if row is not None
                  else CallState.start(event.call_id, raw.received_at))
        state = before.merge(event, raw.received_at)
        changed = row is None or state != before
        case = self.intake.services.case(tx, row.case_id) if row and row.case_id else None
        status: JournalStatus = "accepted" if changed else "replay"
        raw_id = self.intake.services.journal(tx, raw, status)
        outcome, case_id, code, kind = self._decide(tx, raw_id, state, case, changed)
        if row is not None and row.case_kind and case_id == row.case_id and kind is None:
            kind = row.case_kind
        waiting_for, due_at = self._waiting(state, case_id is not None)
        summary = _summary(state, waiting_for, due_at)
        if row is None:
            store_calls.insert(tx, self.source, event.call_id, summary, state.to_json(),
                               case_id, kind)
        elif changed or case_id != row.case_id:
            store_calls.update(tx, row.id, summary, state.to_json(), case_id, kind)
        detail = {"call_id": event.call_id, "outcome": outcome, "case_code": code}
        self.intake.services.set_outcome(tx, raw_id, status, case_id, detail)
        return CallResult(outcome, raw_id, case_code=code, call_id=event.call_id,
                          status=state.status, waiting_for=waiting_for)

    def _decide(self, tx: Tx, raw_id: int, state: CallState, case: CaseRecord | None,
                changed: bool) -> tuple[CallOutcome, int | None, str | None, str | None]:
        """(outcome, case id, case code, case kind if filed or re-filed now)."""
        if case is not None:
            if changed and self._update(tx, case, state):
                return "updated", case.id, case.case_code, _kind(state)
            return ("replay" if not changed else "recorded"), case.id, case.case_code, None
        if not self._should_file(state):
            return ("recorded" if changed else "replay"), None, None, None
        draft = complaint_draft(state, self.source, datetime.fromisoformat(state.first_seen))
        validate_draft(draft)
        filed = self.intake.file_case(tx, raw_id, draft, [f"ref:{state.call_id}"])
        return "new", filed.id, filed.case_code, _kind(state)

    def _should_file(self, state: CallState) -> bool:
        if state.notes is not None:
            return state.answered or state.final
        if is_callback(state) and state.inbound and self.policy.missed_calls == "callback":
            number = e164_or_none(citizen_number(state.call_info()))
            if number is None:
                log.warning("callback_without_number", source=self.source,
                            call_id=state.call_id)
            return number is not None
        return False

    def _update(self, tx: Tx, case: CaseRecord, state: CallState) -> bool:
        """Refresh the case from the call's state; False when nothing in it changed."""
        complaint = Complaint.model_validate_json(case.document)
        draft = complaint_draft(state, self.source, complaint.received_at)
        validate_draft(draft)
        update = {k: getattr(draft, k) for k in _UPDATED}
        # Once confidential, always: the notes (or a rule on their text) may make it so.
        update["confidential"] = (complaint.confidential or draft.confidential
                                  or bool(self.intake.hints_of(draft).get("confidential")))
        updated = complaint.model_copy(update=update)
        if updated == complaint:
            return False
        self.intake.update_case(tx, case.id, updated, draft)  # dedup: the notes may be new
        return True

    def _waiting(self, state: CallState, has_case: bool) -> tuple[str | None, float | None]:
        """What the call still waits for, and when that wait is overdue."""
        if has_case:
            return None, None
        timeout = self.policy.notes_timeout_s
        if state.answered and state.notes is None:
            since = state.seen.get("ended") or state.seen["answered"]
            return "notes", datetime.fromisoformat(since).timestamp() + timeout
        if state.notes is not None and not state.final:
            return "call", datetime.fromisoformat(state.seen["notes"]).timestamp() + timeout
        return None, None


def _kind(state: CallState) -> str:
    return "callback" if is_callback(state) else "complaint"


def _summary(state: CallState, waiting_for: str | None, due_at: float | None) -> CallSummary:
    info = state.call_info()
    offered = info.started_at or datetime.fromisoformat(state.first_seen)
    return CallSummary(
        direction=info.direction, caller=info.caller, agent=info.agent, status=state.status,
        disposition=info.disposition, offered_at=offered.timestamp(),
        answered_at=info.answered_at.timestamp() if info.answered_at else None,
        ended_at=info.ended_at.timestamp() if info.ended_at else None,
        ring_seconds=info.ring_seconds, talk_seconds=info.talk_seconds,
        has_notes=state.notes is not None, waiting_for=waiting_for, due_at=due_at,
    )


# -- KPIs ------------------------------------------------------------------------------

RING_BUCKETS = (5, 10, 15, 20, 30, 60)


@dataclass(frozen=True)
class HotlineStats:
    """The hotline's KPIs over the inbound calls offered in a period."""

    offered: int
    answered: int
    abandoned: int  # the caller hung up before an answer
    unanswered_other: int  # no answer, busy, failed
    in_progress: int
    threshold_s: int
    answered_within: int  # answered within threshold_s seconds of ringing
    ring_unknown: int  # answered, but when the ringing began is unknown
    service_level: float | None
    answered_share: float | None
    ring_p50: int | None
    ring_p90: int | None
    ring_max: int | None
    ring_histogram: list[tuple[str, int]]
    awaiting_notes: int
    notes_overdue: int
    callback_cases: int
    outbound: int

    def as_json(self) -> dict[str, Any]:
        body = dict(self.__dict__)
        body["ring_histogram"] = dict(self.ring_histogram)
        return body


def hotline_stats(rows: Sequence[KpiRow], now: float, threshold_s: int = 15) -> HotlineStats:
    inbound = [r for r in rows if r.direction == "inbound"]
    answered = [r for r in inbound if r.status in ("answered", "ended")]
    missed = [r for r in inbound if r.status == "missed"]
    abandoned = sum(1 for r in missed if r.disposition == "abandoned")
    rings = sorted(r.ring_seconds for r in answered if r.ring_seconds is not None)
    within = sum(1 for s in rings if s <= threshold_s)
    judged = len(rings) + len(missed)
    finished = len(answered) + len(missed)
    return HotlineStats(
        offered=len(inbound), answered=len(answered), abandoned=abandoned,
        unanswered_other=len(missed) - abandoned,
        in_progress=len(inbound) - len(answered) - len(missed),
        threshold_s=threshold_s, answered_within=within, ring_unknown=len(answered) - len(rings),
        service_level=round(within / judged, 4) if judged else None,
        answered_share=round(len(answered) / finished, 4) if finished else None,
        ring_p50=_percentile(rings, 50), ring_p90=_percentile(rings, 90),
        ring_max=rings[-1] if rings else None, ring_histogram=_histogram(rings),
        awaiting_notes=sum(1 for r in rows if r.waiting_for == "notes"),
        notes_overdue=sum(1 for r in rows if r.due_at is not None and r.due_at <= now),
        callback_cases=sum(1 for r in rows if r.case_kind == "callback"),
        outbound=len(rows) - len(inbound),
    )


def _percentile(values: list[int], pct: int) -> int | None:
    if not values:
        return None
    return values[max(0, -(-len(values) * pct // 100) - 1)]  # nearest rank


def _histogram(rings: list[int]) -> list[tuple[str, int]]:
    edges = (0, *RING_BUCKETS)
    buckets = [(f"{lo}-{hi}s", sum(1 for s in rings if lo <= s < hi))
               for lo, hi in zip(edges, RING_BUCKETS, strict=False)]
    return [*buckets, (f"{RING_BUCKETS[-1]}s+", sum(1 for s in rings if s >= RING_BUCKETS[-1]))]




def kpis(tx: Tx, now: float, window_s: float = 86400.0) -> dict[str, Any]:
    """The hotline figures operations graph (gateway/ops/metrics.py): the service level over
    the last ``window_s`` seconds, and abandoned calls ever (a counter)."""
    stats = hotline_stats(store_calls.kpi_rows(tx, now - window_s, now), now)
    return {
        "answered_within_15s_ratio": stats.service_level,
        "abandoned_total": store_calls.count_abandoned(tx),
        "offered_24h": stats.offered,
        "answered_24h": stats.answered,
        "notes_overdue": stats.notes_overdue,
    }
