"""The pull feed's promise with several writers, on both engines: a reader polling by
cursor while they commit sees every committed case exactly once, in cursor order.

Writers are several stores on one database (each its own writer thread and connection,
as replicas have) and, on PostgreSQL, another process too. SQLite serialises them (one
writer at a time); PostgreSQL does not, and the feed's horizon keeps the order
(gateway/store/cases.py, docs/downstream.md).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from contextlib import AsyncExitStack
from pathlib import Path

from gateway.store import Store, Tx, cases
from tests.conftest import started_store
from tests.test_pipeline import text_intake, text_raw
from tests.test_store import add_case
from tests.test_store_round_trips import distinct_text

ROOT = Path(__file__).resolve().parents[1]


async def read_feed(store: Store, cursor: int, page: int = 7) -> list[cases.CaseRow]:
    return await store.read(lambda tx: cases.feed_after(tx, cursor, page))


class Reader:
    """Polls the feed by cursor like a case platform, keeping every row it was given."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cursor = 0
        self.seen: list[cases.CaseRow] = []

    async def poll(self) -> int:
        rows = await read_feed(self.store, self.cursor)
        if rows:
            assert rows[0].feed_pos > self.cursor
            self.seen.extend(rows)
            self.cursor = rows[-1].feed_pos
        return len(rows)

    async def until_done(self, writers: asyncio.Future[object]) -> None:
        while not writers.done():
            await self.poll()
            await asyncio.sleep(0)
        while await self.poll():
            pass


async def test_a_case_committed_late_is_not_skipped(store_url: str) -> None:
    """A transaction that took its position first but commits last: the reader is given
    neither case until it has committed, then both, in position order."""
    async with started_store(store_url) as a, started_store(store_url) as b:
        inside, release = threading.Event(), threading.Event()

        def slow(tx: Tx) -> cases.CaseRow:
            row = add_case(tx, "CY-SLOW")
            inside.set()
            release.wait(60)
            return row

        slow_write = asyncio.ensure_future(a.write(slow))
        await asyncio.to_thread(inside.wait, 60)
        fast_write = asyncio.ensure_future(b.write(lambda tx: add_case(tx, "CY-FAST")))
        if b.engine == "postgresql":  # commits while the slow one is still open
            await fast_write
        assert await read_feed(b, 0) == []
        release.set()
        slow_row, fast_row = await slow_write, await fast_write
        feed = await read_feed(b, 0)
    assert [r.case_code for r in feed] == ["CY-SLOW", "CY-FAST"]
    assert [r.feed_pos for r in feed] == [slow_row.feed_pos, fast_row.feed_pos]


async def test_writers_and_a_reader_every_case_once_in_order(store_url: str) -> None:
    pg = store_url.startswith("postgresql")
    async with AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(started_store(store_url))
                  for _ in range(3 if pg else 2)]
        process = None
        if pg:  # a writer of another process, like a second gateway replica
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.feed_writer", store_url, "proc", "80"],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
        intakes = [text_intake(s) for s in stores]

        async def write_all() -> list[str]:
            results = await asyncio.gather(*(
                intake.submit(text_raw(f"w{w}-{i}", distinct_text(f"w{w}", i)))
                for i in range(80) for w, intake in enumerate(intakes)))
            codes = [r.case_code or "" for r in results]
            if process is not None:
                out, _ = await asyncio.to_thread(process.communicate, timeout=120)
                assert process.returncode == 0
                codes += [line for line in out.splitlines() if line.startswith("CY-")]
            return codes

        reader = Reader(stores[0])
        writers = asyncio.ensure_future(write_all())
        await reader.until_done(writers)
        committed = writers.result()
    assert len(committed) == len(set(committed)) == 80 * (len(intakes) + pg)  # no code twice
    positions = [r.feed_pos for r in reader.seen]
    assert positions == sorted(set(positions))  # cursor order, no position twice
    assert {r.case_code for r in reader.seen} == set(committed)  # nothing skipped
    # A case seen again is an update (a related case put it in a cluster), never a repeat
    # of what the reader was given.
    versions = [(r.case_code, r.document) for r in reader.seen]
    assert len(versions) == len(set(versions))
