"""A batch's plain INSERTs gathered into one statement per kind (PostgreSQL).

On PostgreSQL every statement costs the writer thread the same Python work in psycopg
whatever its size (a cursor, its parameters dumped, a send through the pipeline): about
30 µs, and a submission makes a dozen inserts (journal, case, outbox, look-up row, dedup
entry, band keys, reporter keys). When the group committer runs a batch whole
(gateway/store/engine.py), an insert that nobody reads back is held here instead and
sent with the others of its kind as one multi-row ``INSERT … VALUES (…), (…)`` before
the next statement of any other kind: twenty submissions' case rows are one statement.

What holds the order: the held inserts are sent before any other statement (a read, an
update, a lock, the commit), so every statement sees what ran before it; rows of one
table keep their order (identity ids, outbox order); only inserts into different tables
between two other statements change places, and no table of the store has a foreign key
or a trigger that could tell. A failure is the batch's anyway in a whole run (any error
rolls it back and it runs again unit by unit, without holding inserts)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

# ``INSERT INTO t (a, b) VALUES (?, ?)``, one row or several, of placeholders and plain
# literals only, then at most ``ON CONFLICT … DO NOTHING`` (several rows with one key in
# one statement: the first is kept, as one by one); no RETURNING, no DO UPDATE (it
# refuses to change one row twice in a statement), no subquery.
_VALUE = r"\s*(?:\?|'[^'?]*'|-?\d+(?:\.\d+)?|NULL)\s*"
_ROW = rf"\({_VALUE}(?:,{_VALUE})*\)"
_PLAIN_INSERT = re.compile(
    rf"\s*(INSERT INTO \w+\s*\([\w\s,]+\)\s*VALUES\s*)({_ROW}(?:\s*,\s*{_ROW})*)"
    r"(\s*ON CONFLICT\s*(?:\([\w\s,]+\))?\s*DO NOTHING)?\s*",
    re.IGNORECASE)

# PostgreSQL takes at most 65,535 parameters a statement.
MAX_PARAMS = 30_000


@lru_cache(maxsize=1024)
def plain_insert(sql: str) -> tuple[str, str, str] | None:
    """``(head, rows, tail)`` of a plain insert (``INSERT INTO t (a, b) VALUES ``,
    ``(?, ?)`` and ``""`` or `` ON CONFLICT DO NOTHING``), None for any other statement.
    The store's statements are a few hundred texts."""
    match = _PLAIN_INSERT.fullmatch(sql)
    return (match.group(1), match.group(2), match.group(3) or "") if match else None


class HeldInserts:
    """The plain inserts held since the last statement of another kind, by statement."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Sequence[Any]]] = {}  # in the order first held

    def hold(self, sql: str, params: Sequence[Any]) -> bool:
        """Hold ``sql`` with ``params`` if it is a plain insert; False (not held) if not."""
        if plain_insert(sql) is None:
            return False
        self._rows.setdefault(sql, []).append(params)
        return True

    def __bool__(self) -> bool:
        return bool(self._rows)

    def drain(self) -> Iterator[tuple[str, list[Any]]]:
        """The held inserts as statements (``?`` placeholders) and their parameters, one
        per kind, or a few for very many rows; nothing is held afterwards."""
        held, self._rows = self._rows, {}
        for sql, rows in held.items():
            if len(rows) == 1:
                yield sql, list(rows[0])
                continue
            per_statement = max(1, MAX_PARAMS // max(1, len(rows[0])))
            for start in range(0, len(rows), per_statement):
                chunk = rows[start:start + per_statement]
                yield rows_statement(sql, len(chunk)), [value for row in chunk for value in row]


@lru_cache(maxsize=1024)
def rows_statement(sql: str, count: int) -> str:
    """The plain insert ``sql`` for ``count`` rows. Cached, so a batch's statement is
    the same string object each time: the dialect's own per-text cache (numbered
    placeholders on PostgreSQL) then finds it without comparing kilobytes of text."""
    shape = plain_insert(sql)
    assert shape is not None, sql
    head, values, tail = shape
    return head + ", ".join([values] * count) + tail
