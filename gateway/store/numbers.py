"""Case-code numbers taken in blocks, outside the intake transaction (several writers).

A counter row updated inside the intake transaction stays locked until that transaction
commits: every other replica filing a case of the same region, day and channel waits
for it, so replicas add no throughput. Here the writer takes a *block* of numbers from
the same ``sequences`` row in a statement of its own (autocommit, on a connection of its
own: the row is locked for that statement only) and hands them out from memory.

What it costs: numbers of a block that no committed case uses are never used at all
(a unit rolled back, a replica stopped, the day ended), so a day's codes can have gaps,
and two replicas' codes interleave by block, not by time. A number is never used twice:
each block comes from one atomic increment of the row. docs/case-codes.md says so.

The block grows while a key is busy (doubling while a block lasts under a second, up to
``MAX_BLOCK``) and shrinks back to one when it is quiet, so a quiet centre gets
consecutive codes and a busy one a round trip per block, not per case.

Row ids of the journal and of cases come the same way (``take_id``), from the tables'
own identity sequences: an insert then needs no ``RETURNING id``, which in pipeline mode
is a wait for the server per row. Ids are unique, not in commit order (they never
were across replicas); nothing orders by them but as a tie-break.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BLOCK = 128
BUSY_S = 1.0  # a block used up faster than this: the next one is twice as big

_TAKE = (
    "INSERT INTO sequences (scope, value) VALUES (?, ?) ON CONFLICT (scope) "
    "DO UPDATE SET value = sequences.value + excluded.value RETURNING value"
)
_IDS = "SELECT nextval(pg_get_serial_sequence(?, 'id')) FROM generate_series(1, ?)"
ID_TABLES = frozenset({"raw_records", "cases"})


@dataclass
class _Block:
    numbers: deque[int]
    size: int
    taken_at: float


class NumberBlocks:
    """Blocks of numbers per scope, for one writer thread (not thread-safe on purpose:
    only the store's writer thread files cases)."""

    def __init__(self, connect: Callable[[], Any], translate: Callable[[str], str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._connect = connect
        self._sql = translate(_TAKE)
        self._ids_sql = translate(_IDS)
        self._clock = clock
        self._conn: Any = None
        self._blocks: dict[str, _Block] = {}
        self.round_trips = 0

    def take(self, scope: str) -> int:
        """The next number of ``scope``: from the current block, or a new block."""
        return self._next(scope, self._increment)

    def take_id(self, table: str) -> int:
        """A new row id of ``table`` (one of ``ID_TABLES``), from its identity sequence."""
        assert table in ID_TABLES, table
        return self._next(f"id:{table}", self._ids)

    def _next(self, key: str, refill: Callable[[str, int], list[int]]) -> int:
        block = self._blocks.get(key)
        if block is None or not block.numbers:
            block = self._blocks[key] = self._refill(key, block, refill)
        return block.numbers.popleft()

    def _refill(self, key: str, old: _Block | None,
                refill: Callable[[str, int], list[int]]) -> _Block:
        now = self._clock()
        size = 1
        if old is not None:
            busy = now - old.taken_at < BUSY_S
            size = min(MAX_BLOCK, old.size * 2) if busy else max(1, old.size // 2)
        numbers = deque(refill(key, size))
        # Old scopes (yesterday's codes) are dropped when a new one starts: few live keys.
        if old is None and len(self._blocks) > 64:
            self._blocks.clear()
        return _Block(numbers, size, now)

    def _increment(self, scope: str, size: int) -> list[int]:
        last = int(self._one_statement(self._sql, (scope, size))[0][0])
        return list(range(last - size + 1, last + 1))

    def _ids(self, key: str, size: int) -> list[int]:
        return [int(r[0]) for r in self._one_statement(self._ids_sql,
                                                       (key.removeprefix("id:"), size))]

    def _one_statement(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self._conn is None:
            self._conn = self._connect()
        try:
            rows = list(self._conn.execute(sql, params).fetchall())
        except Exception:
            self.close()  # a broken connection is opened again next time
            raise
        self.round_trips += 1
        return rows

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
