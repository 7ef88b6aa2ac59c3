"""Case statuses coming back from the case platform (issue 14), as this package needs
them: which cases are closed (the report's overdue list) and the platform's final
category (training feedback). The protocol keeps the report and the export independent
of the table; ``StoredStatuses`` reads the history the status API and
``minsheng cases import-status`` write (gateway/store/statuses.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gateway.store import Store, statuses


@dataclass(frozen=True)
class FinalCategory:
    """The category the case platform settled on for one case, with the case's text."""

    case_code: str
    subject: str
    body: str
    category: str


class CaseStatuses(Protocol):
    async def closed(self, case_codes: Iterable[str]) -> set[str] | None:
        """The codes among ``case_codes`` that have a ``closed`` status; None when the
        gateway does not receive statuses (then nobody knows)."""

    async def final_categories(self) -> list[FinalCategory]:
        """Cases whose final category the platform sent back."""


class StoredStatuses:
    """The statuses kept in the store's ``case_statuses`` table (gateway/store/statuses.py),
    filled by ``POST /v1/cases/{code}/status`` and ``minsheng cases import-status``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def closed(self, case_codes: Iterable[str]) -> set[str] | None:
        codes = list(case_codes)
        return await self.store.read(lambda tx: statuses.closed_among(tx, codes))

    async def final_categories(self) -> list[FinalCategory]:
        rows = await self.store.read(statuses.final_categories)
        return [FinalCategory(code, *_text_of(document), category)
                for code, document, category in rows]


def _text_of(document: str) -> tuple[str, str]:
    """Subject and body of a stored case document."""
    data = json.loads(document)
    return str(data.get("subject") or ""), str(data.get("body") or "")


def case_statuses(store: Store) -> CaseStatuses:
    """The statuses of ``store``."""
    return StoredStatuses(store)
