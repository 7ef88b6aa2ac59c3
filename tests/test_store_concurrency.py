"""The store under concurrency, on both engines: atomic sequences (also across two
stores on one database, i.e. two replicas), group commit with per-unit rollback, outbox
claims shared between replicas, and unique case codes from concurrent intake."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.intake.pipeline import IntakeResult
from gateway.model.casecode import parse_code
from gateway.store import Store, StoreUnavailable, Tx, cases, checkpoints, outbox
from tests.conftest import started_store
from tests.test_pipeline import text_intake, text_raw


@asynccontextmanager
async def writer_held(store: Store) -> AsyncIterator[None]:
    """Keep the writer thread busy in one unit; writes queued meanwhile form one batch."""
    started, release = threading.Event(), threading.Event()

    def block(tx: Tx) -> None:
        started.set()
        release.wait(60)

    blocker = asyncio.ensure_future(store.write(block))
    await asyncio.to_thread(started.wait, 60)
    try:
        yield
    finally:
        release.set()
        await blocker


async def one_batch(store: Store, units: list[Callable[[Tx], Any]]) -> list[Any]:
    """Run ``units`` as one group-committed batch; results (or exceptions) in order."""
    async with writer_held(store):
        tasks = [asyncio.ensure_future(store.write(fn)) for fn in units]
        await asyncio.sleep(0)  # every task runs up to its await: all are queued
        before = store.db.batches
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert store.db.batches == before + 2  # the blocker's batch, then all of ``units``
    return results


def take(scope: str) -> Callable[[Tx], int]:
    return lambda tx: cases.next_value(tx, scope)


# -- sequences -------------------------------------------------------------------------


async def test_200_concurrent_writers_take_1_to_200(store: Store) -> None:
    numbers = await asyncio.gather(*(store.write(take("day")) for _ in range(200)))
    assert sorted(numbers) == list(range(1, 201))
    assert store.db.batches < store.db.units  # group commit did batch them


async def test_two_replicas_share_one_sequence(store: Store, store_url: str) -> None:
    async with started_store(store_url) as other:
        mine, theirs = await asyncio.gather(
            asyncio.gather(*(store.write(take("day")) for _ in range(150))),
            asyncio.gather(*(other.write(take("day")) for _ in range(150))),
        )
    assert len(set(mine)) == len(set(theirs)) == 150
    assert sorted(mine + theirs) == list(range(1, 301))


# -- group commit ----------------------------------------------------------------------


def put_checkpoint(name: str) -> Callable[[Tx], str]:
    def unit(tx: Tx) -> str:
        checkpoints.put(tx, name, {"by": name})
        return f"done {name}"

    return unit


def fails_in_python(tx: Tx) -> None:
    checkpoints.put(tx, "bad-python", 1)
    raise ValueError("boom")


def fails_in_sql(tx: Tx) -> None:
    checkpoints.put(tx, "bad-sql", 1)
    tx.execute("INSERT INTO leases (name, owner, expires_at) VALUES ('dup', 'x', 0)")
    tx.execute("INSERT INTO leases (name, owner, expires_at) VALUES ('dup', 'y', 0)")


async def test_group_commit_results_and_per_unit_rollback(store: Store) -> None:
    units: list[Callable[[Tx], Any]] = [put_checkpoint(f"u{i}") for i in range(40)]
    units[10] = fails_in_python
    units[25] = fails_in_sql
    results = await one_batch(store, units)

    assert isinstance(results[10], ValueError) and str(results[10]) == "boom"
    assert isinstance(results[25], Exception)
    assert not isinstance(results[25], StoreUnavailable)  # only that unit failed
    good = [i for i in range(40) if i not in (10, 25)]
    assert [results[i] for i in good] == [f"done u{i}" for i in good]

    def stored(tx: Tx) -> tuple[set[str], int]:
        names = {str(r[0]) for r in tx.fetchall("SELECT source FROM checkpoints")}
        return names, int(tx.fetchone("SELECT COUNT(*) FROM leases")[0])

    names, leases = await store.read(stored)
    assert names == {f"u{i}" for i in good}  # the failed units' rows are absent
    assert leases == 0
    assert store.db.batches < store.db.units
    # PostgreSQL runs a batch whole first (one wait); a failed unit has it run again unit
    # by unit, each in its savepoint. SQLite runs unit by unit at once (no waits to save).
    assert store.db.reruns == (1 if store.engine == "postgresql" else 0)


def advisory_locks_held(tx: Tx) -> int:
    return int(tx.fetchone(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' "
        "AND pid = pg_backend_pid() AND granted"
    )[0])


def locks_then_fails(tx: Tx) -> None:
    tx.lock_intake()
    raise RuntimeError("unit failed after taking the intake lock")


def locks_then_counts(tx: Tx) -> int:
    tx.lock_intake()
    return advisory_locks_held(tx)


async def test_intake_lock_is_held_after_a_failed_unit(store: Store) -> None:
    if store.engine != "postgresql":
        pytest.skip("advisory locks exist on PostgreSQL only")
    first, second = await one_batch(store, [locks_then_fails, locks_then_counts])
    assert isinstance(first, RuntimeError)
    assert second == 1


# -- outbox claims between replicas ----------------------------------------------------


async def claim_all(store: Store, owner: str) -> list[int]:
    claimed: list[int] = []
    while True:
        batch = await store.write(lambda tx: outbox.claim(tx, "s", 7, 300, owner))
        if not batch:
            return claimed
        claimed.extend(d.outbox_id for d in batch)


async def test_two_replicas_never_claim_the_same_entry(store: Store, store_url: str) -> None:
    await store.write(lambda tx: outbox.enqueue(tx, ["s"] * 300, None, "event", "{}"))
    async with started_store(store_url) as other:
        mine, theirs = await asyncio.gather(*(
            claim_all(s, owner) for s, owner in ((store, "a"), (other, "b"))
        ))
    assert not set(mine) & set(theirs)
    assert len(mine) + len(theirs) == 300
    assert len(set(mine + theirs)) == 300


# -- case codes from concurrent intake -------------------------------------------------


def assert_codes(results: list[IntakeResult], n: int, consecutive: bool = True) -> None:
    """``n`` new cases, no code twice; ``consecutive``: numbered 1…n. Several writers
    take numbers in blocks (gateway/store/numbers.py), so a block one replica did not use
    up leaves a gap (docs/case-codes.md); one writer's numbers have none."""
    assert [r.outcome for r in results] == ["new"] * n
    codes = [r.case_code or "" for r in results]
    assert len(set(codes)) == n
    numbers = sorted(parse_code(c, "CY").sequence for c in codes)
    assert len(set(numbers)) == n
    if consecutive:
        assert numbers == list(range(1, n + 1))


async def test_concurrent_intake_gives_unique_codes(store: Store) -> None:
    intake = text_intake(store)
    results = await asyncio.gather(*(intake.submit(text_raw(f"call-{i}")) for i in range(120)))
    assert_codes(list(results), 120)  # one writer: its blocks follow each other
    feed = await store.read(lambda tx: cases.feed_after(tx, 0, 1000))
    positions = [r.feed_pos for r in feed]
    assert len(set(positions)) == 120 and positions == sorted(positions)
    if store.engine == "sqlite":  # a counter; PostgreSQL's follow transaction ids
        assert positions == list(range(1, 121))


async def test_two_replicas_intake_unique_codes(store: Store, store_url: str) -> None:
    async with started_store(store_url) as other:
        a, b = text_intake(store), text_intake(other)
        results = await asyncio.gather(
            *(a.submit(text_raw(f"a-{i}")) for i in range(60)),
            *(b.submit(text_raw(f"b-{i}")) for i in range(60)),
        )
    assert_codes(list(results), 120, consecutive=store.engine == "sqlite")


async def test_same_item_on_two_replicas_makes_one_case(store: Store, store_url: str) -> None:
    async with started_store(store_url) as other:
        a, b = text_intake(store), text_intake(other)
        results = await asyncio.gather(
            *(a.submit(text_raw("call-1")) for _ in range(15)),
            *(b.submit(text_raw("call-1")) for _ in range(15)),
        )
    outcomes = sorted(r.outcome for r in results)
    assert outcomes == ["new"] + ["replay"] * 29
    assert len({r.case_code for r in results}) == 1
    assert await store.read(cases.count) == 1
