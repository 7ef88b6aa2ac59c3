"""The checkpoint of an ``imap_email`` source, per folder: its UIDVALIDITY, the last UID
done and, when ``start_at`` applied, the day its reading started from::

    {"folders": {"INBOX": {"uidvalidity": 1795668840, "uid": 1234, "since": "2026-11-26"}}}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass
class Cursor:
    """The checkpoint being advanced: per folder, its UIDVALIDITY and the last UID done."""

    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirty: bool = False

    @classmethod
    def load(cls, value: Any) -> Cursor:
        folders = value.get("folders") if isinstance(value, dict) else None
        if not isinstance(folders, dict):
            return cls()
        return cls({k: dict(v) for k, v in folders.items() if isinstance(v, dict)})

    def last_uid(self, folder: str, uidvalidity: int) -> int | None:
        """The last UID done, or ``None`` when the folder is new or was renumbered."""
        known = self.folders.get(folder)
        if known is None or known.get("uidvalidity") != uidvalidity:
            return None
        return int(known.get("uid", 0))

    def advance(self, folder: str, uidvalidity: int, uid: int) -> None:
        self.folders[folder] = {**self.folders.get(folder, {}), "uidvalidity": uidvalidity,
                                "uid": uid}
        self.dirty = True

    def since(self, folder: str) -> date | None:
        """The day the folder's reading started from (``start_at`` new or a day), if so."""
        value = self.folders.get(folder, {}).get("since")
        return date.fromisoformat(value) if isinstance(value, str) else None

    def start_since(self, folder: str, day: date) -> None:
        self.folders[folder] = {**self.folders.get(folder, {}), "since": day.isoformat()}
        self.dirty = True

    def snapshot(self) -> dict[str, Any]:
        return {"folders": copy.deepcopy(self.folders)}
