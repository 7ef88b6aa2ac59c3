"""The store's side of ``gateway.intake.ports``: what adapters may ask of the store.

Adapters never import the store; the intake hands them this object typed as the core's
``AdapterServices`` protocol (structural: the store does not import the core's layer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from gateway.model.audit_action import AuditAction
from gateway.model.schema import RawRecord
from gateway.store import Store, audit, cases, checkpoints, erasure, journal, quarantine
from gateway.store.cases import CaseRow
from gateway.store.engine import Tx
from gateway.support.keyed_ids import IdentifierKeys


class StoreServices:
    def __init__(self, store: Store,
                 identifier_keys: Callable[[], IdentifierKeys | None] = lambda: None) -> None:
        self.store = store
        # The keys in force, asked when needed: the running gateway sets them on the
        # intake after building it (tombstones are keyed: gateway/store/erasure.py).
        self.identifier_keys = identifier_keys

    async def journaled_refs(self, source: str, refs: list[str]) -> set[str]:
        if not refs:
            return set()
        return await self.store.read(partial(journal.refs_journaled, source=source,
                                             refs=list(refs)))

    async def save_checkpoint(self, source: str, value: Any) -> None:
        await self.store.write(partial(checkpoints.put, source=source, value=value))

    async def quarantined_refs(self, source: str, reason: str, key: str) -> set[str]:
        return await self.store.read(partial(quarantine.detail_values, source=source,
                                             reason=reason, key=key))

    async def quarantine_item(self, source: str, reason: str, detail: Any) -> int:
        return await self.store.write(lambda tx: quarantine.add(tx, source, None, reason,
                                                                 detail))

    def journal(self, tx: Tx, raw: RawRecord, status: str, detail: Any = None,
                case_id: int | None = None) -> int:
        return journal.insert_raw(tx, raw, status, detail, case_id)

    def set_outcome(self, tx: Tx, raw_id: int, status: str, case_id: int | None = None,
                    detail: Any = None) -> None:
        journal.set_outcome(tx, raw_id, status, case_id, detail)

    def quarantine(self, tx: Tx, source: str, raw_id: int | None, reason: str,
                   detail: Any = None) -> int:
        return quarantine.add(tx, source, raw_id, reason, detail)

    def case(self, tx: Tx, case_id: int) -> CaseRow | None:
        return cases.get_by_id(tx, case_id)

    def erased(self, tx: Tx, source: str, replay_keys: list[str]) -> bool:
        keys = self.identifier_keys()
        return keys is not None and erasure.is_erased(tx, keys, source, replay_keys)

    def record_access(self, tx: Tx, actor: str, action: AuditAction, target: str,
                      detail: Mapping[str, Any] | None = None) -> None:
        audit.record(tx, actor, action, target, detail)

