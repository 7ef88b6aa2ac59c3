"""What the core hands adapters instead of the store: small interfaces, implemented by it.

Adapters never import ``gateway.store`` (an import contract says so). What they need of
it comes through ``Intake``: ``intake.services`` (an ``AdapterServices``, implemented by
``gateway.store.services.StoreServices``) and ``intake.store.read``/``write`` running a
function of a ``Tx`` (the store's transaction, named here so adapters need not import
the store). A channel that keeps state of its own (the phone channel's calls) writes its
SQL, once for both engines, against that ``Tx``; its table is created by the store's
migrations like every table, so there is one migration history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from gateway.model.audit_action import AuditAction
from gateway.model.schema import RawRecord
from gateway.store.engine import Tx

__all__ = ["AccessLog", "AdapterServices", "CaseRecord", "Checkpoints", "JournalLookup",
           "JournalStatus", "Ledger", "QuarantineQueries", "Tx"]

# What became of a raw record in the journal (``gateway.store.journal`` spells them).
JournalStatus = Literal["accepted", "replay", "rejected", "quarantined", "filtered",
                        "superseded", "erased"]


class CaseRecord(Protocol):
    """A stored case as a flow of an adapter's own sees it."""

    @property
    def id(self) -> int: ...

    @property
    def case_code(self) -> str: ...

    @property
    def document(self) -> str: ...


class JournalLookup(Protocol):
    async def journaled_refs(self, source: str, refs: list[str]) -> set[str]:
        """Which of ``refs`` the source has journaled already, whatever became of them."""
        ...


class Checkpoints(Protocol):
    async def save_checkpoint(self, source: str, value: Any) -> None:
        """Keep where a pulled source got to (JSON), outside any record's transaction."""
        ...


class QuarantineQueries(Protocol):
    async def quarantined_refs(self, source: str, reason: str, key: str) -> set[str]:
        """The ``detail[key]`` of the source's quarantine entries for ``reason``."""
        ...

    async def quarantine_item(self, source: str, reason: str, detail: Any) -> int:
        """Quarantine an item that never became a journaled record; its entry id."""
        ...


class Ledger(Protocol):
    """Inside a transaction: the journal, the quarantine and cases, for an adapter with a
    flow of its own (phone calls joined from several records)."""

    def journal(self, tx: Tx, raw: RawRecord, status: JournalStatus, detail: Any = None,
                case_id: int | None = None) -> int: ...

    def set_outcome(self, tx: Tx, raw_id: int, status: JournalStatus,
                    case_id: int | None = None, detail: Any = None) -> None: ...

    def quarantine(self, tx: Tx, source: str, raw_id: int | None, reason: str,
                   detail: Any = None) -> int: ...

    def case(self, tx: Tx, case_id: int) -> CaseRecord | None: ...

    def erased(self, tx: Tx, source: str, replay_keys: list[str]) -> bool:
        """Whether a submission of ``source`` with one of these replay keys (``ref:…``)
        was erased at its person's request: it must not be joined or filed again."""
        ...


class AccessLog(Protocol):
    """A channel's own route that shows personal data (the phone channel's overdue calls
    list callers' numbers) records the read in the access log (gateway/store/audit.py)."""

    def record_access(self, tx: Tx, actor: str, action: AuditAction, target: str,
                      detail: Mapping[str, Any] | None = None) -> None: ...


class AdapterServices(JournalLookup, Checkpoints, QuarantineQueries, Ledger, AccessLog,
                      Protocol):
    """Everything above, as ``Intake.services`` hands it to adapters."""
