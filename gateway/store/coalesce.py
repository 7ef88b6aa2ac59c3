"""A batch's plain INSERTs, and the reads its units send ahead, gathered into one
statement per kind (PostgreSQL).

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
rolls it back and it runs again unit by unit, without holding inserts).

The reads the units of a batch say ahead (``ReadAhead``: whether a submission was filed,
its reporter's and its band keys' dedup entries) are two or three per submission, each
as costly to send and to read back as an insert. ``GatheredReads`` sends the reads of
one text as one statement, ``SELECT 0, q.* FROM (…) q UNION ALL SELECT 1, q.* FROM (…)
q …``, and hands each unit its own rows, those tagged with its read's position. They
come in the order of the read's own ``ORDER BY``: PostgreSQL runs a ``UNION ALL`` as an
Append of its branches, each branch's rows in its order (tests/test_coalesce.py compares
every shape of the store's reads with the statement sent alone)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
READS_PER_STATEMENT = 8  # see padded_count


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


Rows = Callable[[], list[Any]]  # a read sent ahead: its rows, when asked for


@dataclass
class _Gathered:
    """The reads of one statement text, by position, and the statement that carried
    them once sent: the text itself if read once, else ``reads_statement``'s, whose
    rows are split by their position tag when first read."""

    params: list[Sequence[Any]] = field(default_factory=list)
    cursor: Any = None
    split: dict[int, list[Any]] | None = None

    @property
    def tagged(self) -> bool:
        """Sent as ``reads_statement``'s (several reads), not as the text itself."""
        return len(self.params) > 1

    def rows(self, position: int) -> list[Any]:
        """The rows of the read at ``position``; the same list each time asked."""
        if self.split is None:
            fetched = self.cursor.fetchall()
            if not self.tagged:
                self.split = {0: list(fetched)}
            else:
                self.split = {}
                for row in fetched:
                    self.split.setdefault(row[0], []).append(row[1:])
        return self.split.setdefault(position, [])


class GatheredReads:
    """Reads gathered while a batch's units say what they read, sent one statement per
    text once all have said it (``send``)."""

    def __init__(self) -> None:
        self._statements: list[tuple[str, _Gathered]] = []  # in the order first gathered
        self._filling: dict[str, _Gathered] = {}  # by text: the statement taking reads

    def add(self, sql: str, params: Sequence[Any]) -> Rows:
        """Gather a read; its rows, to be asked for only after ``send``."""
        gathered = self._filling.get(sql)
        if (gathered is None or len(gathered.params) == READS_PER_STATEMENT
                or (len(gathered.params) + 1) * len(params) > MAX_PARAMS):
            gathered = self._filling[sql] = _Gathered()
            self._statements.append((sql, gathered))
        gathered.params.append(params)
        position = len(gathered.params) - 1
        return lambda: gathered.rows(position)

    def send(self, one: Callable[[str, Sequence[Any]], Any],
             wide: Callable[[str, Sequence[Any]], Any]) -> None:
        """Send the gathered reads, each function returning its statement's cursor: a
        text read once as it is (``one``), a text read several times as one statement
        (``wide``: hundreds of placeholders, perhaps; worth preparing, as ``padded_count``
        says). Nothing is gathered afterwards."""
        statements, self._statements, self._filling = self._statements, [], {}
        for sql, gathered in statements:
            reads = gathered.params
            if not gathered.tagged:
                gathered.cursor = one(sql, reads[0])
                continue
            count = padded_count(len(reads))  # the last read again: nobody takes its rows
            padded = [*reads, *[reads[-1]] * (count - len(reads))]
            gathered.cursor = wide(reads_statement(sql, count),
                                   [value for params in padded for value in params])


def padded_count(count: int) -> int:
    """A statement of gathered reads carries 2, 4 or 8 of them (``READS_PER_STATEMENT``),
    the least at or above ``count``: three texts per kind of read, which the server plans
    once each (prepared after a few batches) instead of at every batch. Planning 20
    reads in one statement took PostgreSQL 1.8 ms, 90 µs a read, and under load its CPU
    per submission rose by two fifths when every batch's count was a text of its own
    (bench/README.md); repeating at most three reads of eight costs less."""
    return 1 << (count - 1).bit_length()


@lru_cache(maxsize=1024)
def reads_statement(sql: str, count: int) -> str:
    """The read ``sql`` made ``count`` times in one statement, each time's rows tagged
    with its position (the first column). Cached, as ``rows_statement``."""
    return " UNION ALL ".join(f"SELECT {n} AS gathered_position, q.* FROM ({sql}) q"
                              for n in range(count))
