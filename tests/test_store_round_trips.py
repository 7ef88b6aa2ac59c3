"""How often the group committer waits for PostgreSQL per batch of submissions, counted
at the socket (tests/round_trips.py). psycopg's pipeline mode (gateway/store/dialect.py)
sends what nobody reads with the next read; the batch runs whole, with one wait at the
commit (gateway/store/engine.py); a unit's dedup reads go ahead with its replay-key read
(``Tx.read_ahead``), and row ids come from the writer's blocks (``Tx.insert_row``). What
is left per unit is that one read."""

from __future__ import annotations

import asyncio
import random

from gateway.store import Store
from tests.pg import create_database
from tests.round_trips import RoundTripProxy
from tests.test_pipeline import text_intake, text_raw
from tests.test_store_concurrency import writer_held

PER_UNIT = 1  # a new case, dedup on: its replay keys and dedup candidates, read together


def distinct_text(tag: str, i: int) -> str:
    """Texts that share nothing (30 random CJK characters): every submission takes the
    common path of a new case, with no cluster to grow."""
    rng = random.Random(f"{tag}-{i}")
    return "".join(chr(0x4E00 + rng.randrange(0x5000)) for _ in range(30))


async def round_trips_of_batch(store: Store, proxy: RoundTripProxy, n: int, tag: str,
                               first: int = 0) -> int:
    intake = text_intake(store)
    async with writer_held(store):
        tasks = [asyncio.ensure_future(intake.submit(
            text_raw(f"{tag}-{i}", distinct_text(tag, first + i))))
            for i in range(n)]
        await asyncio.sleep(0)
        before = store.db.batches
        proxy.reset()
    assert store.db.numbers is not None
    blocks = store.db.numbers.round_trips
    results = await asyncio.gather(*tasks)
    assert store.db.batches == before + 2  # the blocker's batch, then the n submissions
    assert [r.outcome for r in results] == ["new"] * n
    assert store.db.reruns == 0  # every batch ran whole
    # Blocks of case-code numbers come on a connection of their own, growing under load.
    return proxy.reset() - (store.db.numbers.round_trips - blocks)


async def test_round_trips_per_submission_in_a_batch(pg_admin_url: str) -> None:
    """What one more submission in a batch costs: the difference between a batch of 20
    and a batch of 1 (what every batch costs, 3: its feed position and leaving the
    pipeline with the commit, and the end of the batch before it, cancels out). Measured:
    1 per submission (17 without pipeline mode; 5 with it alone: a wait per read, per
    inserted row's id and per unit to know its own errors)."""
    proxy = RoundTripProxy(create_database(pg_admin_url, "round_trips"))
    store = Store.from_url(proxy.url)
    await store.start()
    try:
        await round_trips_of_batch(store, proxy, 3, "warm")  # connections, feed origin
        one = await round_trips_of_batch(store, proxy, 1, "one")
        twenty = await round_trips_of_batch(store, proxy, 20, "twenty")
    finally:
        await store.close()
        proxy.close()
    print(f"round trips: a batch of 1: {one}, a batch of 20: {twenty}")
    # + 2: psycopg prepares a statement on its fifth use, a wait of its own, once.
    assert 0 < twenty - one <= PER_UNIT * 19 + 2
