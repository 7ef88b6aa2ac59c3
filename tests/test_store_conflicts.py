"""Two replicas whose batches wait for each other's keys: PostgreSQL finds the deadlock
and rolls one transaction back; that replica runs its whole batch again, and both
callers get their answer (gateway/store/engine.py). A conflict is PostgreSQL's alone:
SQLite has one writer at a time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from gateway.store import Tx
from tests.conftest import started_store
from tests.pg import create_database


def crossing(first: str, then: str, mine: threading.Event, theirs: threading.Event,
             runs: list[str]) -> Callable[[Tx], str]:
    def unit(tx: Tx) -> str:
        runs.append(first)
        tx.lock_keys([first])
        tx.fetchone("SELECT 1")  # the lock is taken (pipeline mode sends it with a read)
        mine.set()
        theirs.wait(60)
        tx.lock_keys([then])
        tx.fetchone("SELECT 1")
        return first

    return unit


async def test_a_deadlock_between_replicas_runs_one_batch_again(pg_admin_url: str) -> None:
    url = create_database(pg_admin_url, "conflicts")
    async with started_store(url) as a, started_store(url) as b:
        a_in, b_in = threading.Event(), threading.Event()
        runs: list[str] = []
        results = await asyncio.gather(
            a.write(crossing("key:x", "key:y", a_in, b_in, runs)),
            b.write(crossing("key:y", "key:x", b_in, a_in, runs)),
        )
        assert results == ["key:x", "key:y"]
        assert a.db.retries + b.db.retries == 1
        assert sorted(runs) in (["key:x", "key:x", "key:y"], ["key:x", "key:y", "key:y"])
