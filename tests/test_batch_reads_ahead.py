"""Submissions that depend on each other decide the same in one batch as one by one.

On PostgreSQL the group committer sends every unit's reads at the start of a batch
(``ReadAhead``, gateway/store/engine.py): rows read before the units ahead wrote. A unit
whose keys an earlier unit shares (the same submission again, the same reporter, a
shared band key) reads when its turn comes, and a unit that puts an earlier case in a
cluster makes the later units read again. Here a batch holds each such case; its
outcomes, case codes, repeats and clusters must equal those of the same submissions
sent one at a time to a fresh store, and so must the rows stored (cases, outbox entries
in their order, look-up rows, dedup index): on PostgreSQL a batch also sends its plain
inserts one statement per kind (gateway/store/coalesce.py). On SQLite (reads never go
ahead) the same holds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.intake.pipeline import Intake, IntakeResult
from gateway.model.schema import RawRecord
from gateway.store import ReadAhead, Store, Tx
from tests.conftest import started_store
from tests.pg import create_database
from tests.test_dedup_store import (
    LAMP,
    NOISE,
    NOISE_AGAIN,
    TEST_KEYS,
    TREES,
    make_intake,
    raw,
)
from tests.test_store_concurrency import writer_held

Outcome = tuple[str, str | None, str | None, str | None]


def submissions() -> list[RawRecord]:
    first = raw("web", NOISE, phone="+8613800138000")
    return [
        first,
        raw("web", LAMP, phone="+8613600136000"),  # unrelated: its reads go ahead
        replace(first),  # the same submission again: a replay of the first
        raw("web", NOISE, phone="+8613800138000"),  # same reporter, same text: duplicate
        raw("hotline", NOISE_AGAIN, phone="+8613800138000"),  # same reporter: repeat
        raw("web", NOISE, phone="+8613900139000"),  # another reporter: related, a cluster
        raw("web", NOISE + "晚上根本睡不着", phone="+8613700137000"),  # joins that cluster
        raw("mailbox", TREES, email="zhang@example.cn"),  # unrelated again
    ]


def summary(result: IntakeResult) -> Outcome:
    return result.outcome, result.case_code, result.repeat_of, result.cluster_id


# What a store holds after the submissions, without times and row ids (which differ
# between two stores): every row named by case code, the outbox in its order.
STORED = {
    "cases": "SELECT case_code, source, source_ref, channel FROM cases ORDER BY case_code",
    "outbox": "SELECT c.case_code, o.sink, o.kind, o.state FROM outbox o "
              "JOIN cases c ON c.id = o.case_id ORDER BY o.id",
    "lookup": "SELECT case_code, channel, phone_last4 IS NULL, email IS NULL "
              "FROM case_lookup ORDER BY case_code",
    "keys": "SELECT k.scope, k.key, c.case_code FROM dedup_keys k "
            "JOIN cases c ON c.id = k.case_id ORDER BY k.scope, k.key",
    "entries": "SELECT case_code, kind, cluster_id, repeat_of, matched_code "
               "FROM dedup_entries ORDER BY case_code",
    "bands": "SELECT e.case_code, COUNT(*) FROM dedup_bands b JOIN dedup_entries e "
             "ON e.case_id = b.case_id GROUP BY e.case_code ORDER BY e.case_code",
    "reporters": "SELECT e.case_code, COUNT(*) FROM dedup_reporters r JOIN dedup_entries e "
                 "ON e.case_id = r.case_id GROUP BY e.case_code ORDER BY e.case_code",
    "journal": "SELECT source, source_ref, status FROM raw_records ORDER BY id",
}


async def stored(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return await store.read(lambda tx: {name: [tuple(row) for row in tx.fetchall(sql)]
                                        for name, sql in STORED.items()})


def keyed_intake(store: Store) -> Intake:
    """``make_intake`` with identifier keys, so that look-up rows are written too."""
    intake = make_intake(store)
    intake.identifier_keys = TEST_KEYS
    return intake


async def one_by_one(url: str, records: list[RawRecord]
                     ) -> tuple[list[Outcome], dict[str, list[tuple[Any, ...]]]]:
    async with started_store(url) as store:
        intake = keyed_intake(store)
        outcomes = [summary(await intake.submit(record)) for record in records]
        return outcomes, await stored(store)


async def in_one_batch(url: str, records: list[RawRecord]
                       ) -> tuple[list[Outcome], dict[str, list[tuple[Any, ...]]]]:
    async with started_store(url) as store:
        intake = keyed_intake(store)
        async with writer_held(store):
            tasks = [asyncio.ensure_future(intake.submit(record)) for record in records]
            await asyncio.sleep(0)  # every submission is queued: one batch
            before = store.db.batches
        results = await asyncio.gather(*tasks)
        assert store.db.batches == before + 2  # the blocker's batch, then all of them
        assert store.db.reruns == 0
        return [summary(result) for result in results], await stored(store)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_a_batch_decides_as_one_by_one(engine: str, tmp_path: Path,
                                             request: pytest.FixtureRequest) -> None:
    if engine == "sqlite":
        urls = [f"sqlite:///{tmp_path / name}.db" for name in ("sequential", "batch")]
    else:
        admin = request.getfixturevalue("pg_admin_url")
        urls = [create_database(admin, f"reads_ahead_{name}_{os.getpid()}")
                for name in ("sequential", "batch")]
    records = submissions()
    expected, rows = await one_by_one(urls[0], records)
    assert [outcome for outcome, *_ in expected] == [
        "new", "new", "replay", "replay", "repeat", "related", "related", "new"]
    assert [name for name, found in rows.items() if not found] == []  # all hold rows
    outcomes, batch_rows = await in_one_batch(urls[1], records)
    assert outcomes == expected
    assert batch_rows == rows


# -- the group committer's rule, on a table of its own -----------------------------------

SCRATCH = "CREATE TABLE IF NOT EXISTS scratch (k TEXT NOT NULL, v INTEGER NOT NULL)"
READ = "SELECT v FROM scratch WHERE k = ?"


def reads(key: str) -> ReadAhead:
    """A unit that reads the rows filed under ``key``."""
    return ReadAhead((), frozenset({key}), lambda tx: tx.read_ahead(READ, (key,)))


def count_of(key: str) -> Callable[[Tx], int]:
    return lambda tx: len(tx.fetchall(READ, (key,)))


def write(*keys: str, drop: bool = False) -> Callable[[Tx], None]:
    def unit(tx: Tx) -> None:
        for key in keys:
            tx.execute("INSERT INTO scratch (k, v) VALUES (?, 1)", (key,))
        if drop:
            tx.drop_reads_ahead()
    return unit


async def batch_of(store: Store, units: list[tuple[Callable[[Tx], Any], ReadAhead | None]]
                   ) -> list[Any]:
    async with writer_held(store):
        tasks = [asyncio.ensure_future(store.write(fn, ahead)) for fn, ahead in units]
        await asyncio.sleep(0)
        before = store.db.batches
    results = await asyncio.gather(*tasks)
    assert store.db.batches == before + 2  # the blocker's batch, then all of ``units``
    assert store.db.reruns == 0  # run whole, not unit by unit after a failure
    return results


async def test_a_unit_reads_what_the_units_before_it_wrote(store: Store) -> None:
    """Each unit's count must be what it would be one by one, whichever reads went
    ahead: a shared key and a unit that dropped the reads ahead (it wrote under a key
    not its own) make the later units read when their turn comes; a unit that said
    nothing of its reads runs before the reads go. (Three batches: each rule alone would
    hide the others.)"""
    await store.write(lambda tx: tx.execute(SCRATCH))
    shared = await batch_of(store, [
        (write("a"), reads("a")),
        (count_of("a"), reads("a")),  # shares "a" with the unit before: 1
        (count_of("b"), reads("b")),  # nobody wrote "b": 0, read ahead
    ])
    dropped = await batch_of(store, [
        (count_of("b"), reads("b")),
        (write("c", drop=True), reads("x")),  # writes under "c", not its key
        (count_of("c"), reads("c")),  # 1: the reads ahead were dropped
    ])
    silent = await batch_of(store, [
        (count_of("b"), reads("b")),
        (count_of("b"), reads("y")),
        (write("d"), None),  # says nothing: runs before the reads go
        (count_of("d"), reads("d")),  # 1
    ])
    assert (shared[1:], dropped[2], silent[3]) == ([1, 0], 1, 1)



ROWS = "SELECT k, v FROM scratch WHERE k = ?"  # rows that hold their key


def update(key: str, value: int) -> Callable[[Tx], None]:
    """A unit that changes the rows filed under ``key`` (not its own) and says so: only
    the later units' reads whose rows hold ``key`` are dropped."""
    def unit(tx: Tx) -> None:
        tx.execute("UPDATE scratch SET v = ? WHERE k = ?", (value, key))
        tx.drop_reads_ahead(holding=key)
    return unit


def rows_of(key: str) -> ReadAhead:
    return ReadAhead((), frozenset({key}), lambda tx: tx.read_ahead(ROWS, (key,)))


def total_of(key: str) -> Callable[[Tx], tuple[int, bool]]:
    """The sum of the rows under ``key``, and whether the read had gone ahead (a look at
    the transaction's private state: what is kept and what is read again)."""
    def unit(tx: Tx) -> tuple[int, bool]:
        ahead = (ROWS, (key,)) in tx._ahead
        return sum(int(row[1]) for row in tx.fetchall(ROWS, (key,))), ahead
    return unit


async def test_an_update_drops_only_the_reads_that_returned_its_rows(store: Store) -> None:
    """A unit that updated rows holding a value (an earlier case put in a cluster) drops
    the later units' reads whose rows hold it, which read again and see the update; a
    read that returned none of them keeps what came back in the batch's one wait."""
    await store.write(lambda tx: tx.execute(SCRATCH))
    await store.write(lambda tx: tx.execute(
        "INSERT INTO scratch (k, v) VALUES ('e', 1), ('f', 1)"))
    results = await batch_of(store, [
        (update("e", 5), rows_of("z")),
        (total_of("e"), rows_of("e")),
        (total_of("f"), rows_of("f")),
    ])
    kept = store.db.dialect.sends_ahead  # SQLite sends no read ahead
    assert results == [None, (5, False), (1, kept)]


def failing_after_read(key: str) -> Callable[[Tx], int]:
    def unit(tx: Tx) -> int:
        tx.fetchall(ROWS, (key,))
        raise ValueError("a unit that fails after its read came back")
    return unit


async def test_a_failed_unit_among_gathered_and_prepared_reads(store: Store) -> None:
    """Batches whose reads went ahead gathered, enough of them for psycopg to prepare
    the statements; then a batch in which one unit fails after its read came back: it
    fails alone (the batch runs again unit by unit) and the next batches read right."""
    await store.write(lambda tx: tx.execute(SCRATCH))
    await store.write(lambda tx: tx.execute(
        "INSERT INTO scratch (k, v) VALUES ('g', 2), ('h', 3), ('i', 4)"))

    async def one_batch(fail: bool) -> list[Any]:
        units: list[tuple[Callable[[Tx], Any], ReadAhead]] = [
            (total_of(key), rows_of(key)) for key in ("g", "h", "i", "j")]
        if fail:
            units.insert(2, (failing_after_read("h"), rows_of("k")))
        async with writer_held(store):
            tasks = [asyncio.ensure_future(store.write(fn, ahead)) for fn, ahead in units]
            await asyncio.sleep(0)
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    for _ in range(8):
        assert [r[0] for r in await one_batch(False)] == [2, 3, 4, 0]
    reruns = store.db.reruns
    failed = await one_batch(True)
    assert isinstance(failed[2], ValueError)
    assert [r[0] for r in failed[:2] + failed[3:]] == [2, 3, 4, 0]
    assert store.db.reruns == reruns + (1 if store.db.dialect.sends_ahead else 0)
    ahead = store.db.dialect.sends_ahead  # each read taken from those sent ahead
    for _ in range(3):
        assert await one_batch(False) == [(2, ahead), (3, ahead), (4, ahead), (0, ahead)]
