"""Case statuses coming back from the case platform (issue 14), as this package needs
them: which cases are closed (the report's overdue list) and the platform's final
category (training feedback). Issue 14's status API does not exist yet, so the only
implementation, ``NoStatuses``, knows nothing: the report says the overdue figure is not
available and ``classify export-feedback`` exports no rows. When issue 14 lands, an
implementation over its store replaces it in ``case_statuses``; nothing is made up here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gateway.store import Store


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


class NoStatuses:
    """Statuses are not received yet (issue 14): nothing is known, nothing is faked."""

    async def closed(self, case_codes: Iterable[str]) -> set[str] | None:
        return None

    async def final_categories(self) -> list[FinalCategory]:
        return []


def case_statuses(store: Store) -> CaseStatuses:
    """The statuses of ``store``; issue 14 adds the real source here."""
    del store  # read by the implementation issue 14 brings
    return NoStatuses()
