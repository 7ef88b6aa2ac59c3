"""What the gateway's intake transactions cost in SQLite alone, without any Python around.

    .venv/bin/python bench/storage.py [--requests 10000] [--concurrency 64] [--json]

Runs the real intake pipeline in-process (``gateway.server.app.build_intake`` on the shipped
``config/gateway.yaml``, a temporary SQLite store, web-mailbox submissions composed as in
``bench/ingest.py``), once with dedup on and once with it off. Every statement the
store's writer thread executes is recorded per group-committed batch, then replayed
on a fresh database with the same schema and the writer's pragmas (WAL,
``synchronous=FULL``, ``SQLITE_WRITER_PRAGMAS``), one batch per transaction, from a
bare loop. The replay time per request is the storage's
share of an intake with nothing else: no HTTP, no normalizing, no MinHash, no futures,
no GIL contention. ``1 / replay time`` is the most requests per second the one SQLite
writer could commit for this schema, whatever the Python around it did.

A measurement, not a test; it prints figures and exits 0. bench/README.md says more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.servers import REPO, bytes_written
from bench.workload import compose, load_corpus
from gateway.model.schema import RawRecord
from gateway.server.app import build_intake
from gateway.store import Store, engine
from gateway.support.config import load_config
from gateway.support.logging import configure_logging

CORPUS_DIR = REPO.parent / "shared" / "data" / "citizen_messages"
Statement = tuple[str, tuple[Any, ...]]


@contextmanager
def recording() -> Iterator[list[list[Statement]]]:
    """Record what the writer thread runs: one list of statements per batch (BEGIN …
    COMMIT included; savepoints left out, they are the engine's, not the schema's)."""
    batches: list[list[Statement]] = []
    current: list[Statement] = []
    originals = {name: getattr(engine.Tx, name) for name in ("execute", "fetchone", "fetchall")}
    run_batch = engine.Database._run_batch

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(self: engine.Tx, sql: str, params: Sequence[Any] = ()) -> Any:
            current.append((self.dialect.translate(sql), tuple(params)))
            return original(self, sql, params)
        return recorded

    def batch(self: engine.Database, conn: Any, jobs: list[Any]) -> Any:
        current.clear()
        outcome = run_batch(self, conn, jobs)
        batches.append([("BEGIN IMMEDIATE", ()), *current, ("COMMIT", ())])
        return outcome

    for name, original in originals.items():
        setattr(engine.Tx, name, wrap(original))
    engine.Database._run_batch = batch  # type: ignore[method-assign]
    try:
        yield batches
    finally:
        for name, original in originals.items():
            setattr(engine.Tx, name, original)
        engine.Database._run_batch = run_batch  # type: ignore[method-assign]


async def intake_run(workdir: Path, bodies: list[bytes], dedup: bool,
                     concurrency: int) -> tuple[list[list[Statement]], float]:
    """Submit every body through the pipeline; the batches recorded and the seconds."""
    config = load_config(REPO / "config" / "gateway.yaml")
    config.store.url = f"sqlite:///{workdir / 'intake.db'}"
    config.dedup.enabled = dedup
    store = Store.from_url(config.store.url)
    await store.start()
    intake = build_intake(config, store)
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            await intake.submit(RawRecord(
                channel="web", source="web", source_ref=f"web-{n}", payload=bodies[n],
                content_type="application/json", received_at=datetime.now(UTC)))

    with recording() as batches:
        began = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(len(bodies))))
        elapsed = time.perf_counter() - began
    await store.close()
    return batches, elapsed


async def empty_database(path: Path) -> None:
    store = Store.from_url(f"sqlite:///{path}")
    await store.start()  # the schema, by the same migrations
    await store.close()


@dataclass
class Replayed:
    """What replaying took: seconds, CPU seconds (user and system: SQLite's work and the
    kernel's writes; fsync's waits are not CPU), bytes written (WAL and checkpoints) and
    seconds per statement kind."""

    seconds: float
    cpu_s: float
    written: int
    by_kind: dict[str, float]


def replay(path: Path, batches: list[list[Statement]]) -> Replayed:
    """Run the batches on ``path`` from a bare loop."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for pragma in engine.SQLITE_WRITER_PRAGMAS:
        conn.execute(pragma)
    by_kind: dict[str, float] = defaultdict(float)
    written = bytes_written(os.getpid())
    began, cpu_began = time.perf_counter(), time.process_time()
    for batch in batches:
        for sql, params in batch:
            started = time.perf_counter()
            conn.execute(sql, params).fetchall()
            by_kind[" ".join(sql.split()[:3])[:40]] += time.perf_counter() - started
    done = Replayed(time.perf_counter() - began, time.process_time() - cpu_began,
                    bytes_written(os.getpid()) - written, by_kind)
    conn.close()
    return done


def leave_out(batches: list[list[Statement]], tables: Sequence[str]) -> list[list[Statement]]:
    """The batches without their inserts into ``tables``: what those inserts cost is the
    difference (``--leave-out``; the replay's other statements still run)."""
    prefixes = tuple(f"INSERT INTO {table} " for table in tables)
    return [[(sql, params) for sql, params in batch if not sql.lstrip().startswith(prefixes)]
            for batch in batches]


def measure(bodies: list[bytes], dedup: bool, concurrency: int,
            left_out: Sequence[str] = ()) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="minsheng-storage-") as tmp:
        workdir = Path(tmp)
        batches, intake_s = asyncio.run(intake_run(workdir, bodies, dedup, concurrency))
        batches = leave_out([b for b in batches if not _is_migration(b)], left_out)
        asyncio.run(empty_database(workdir / "replay.db"))
        done = replay(workdir / "replay.db", batches)
    n = len(bodies)
    return {
        "dedup": dedup, "requests": n, "batches": len(batches),
        "statements_per_request": round(sum(len(b) for b in batches) / n, 1),
        "intake_rps": round(n / intake_s), "intake_us_per_request": round(intake_s / n * 1e6),
        "left_out": list(left_out),
        "replay_us_per_request": round(done.seconds / n * 1e6, 1),
        "replay_cpu_us_per_request": round(done.cpu_s / n * 1e6, 1),
        "replay_written_kb_per_request": round(done.written / n / 1024, 1),
        "storage_max_rps": round(n / done.seconds),
        "top_statements_us_per_request": {k: round(v / n * 1e6, 1)
                                          for k, v in sorted(done.by_kind.items(),
                                                             key=lambda kv: -kv[1])[:8]},
    }


def _is_migration(batch: list[Statement]) -> bool:
    return any(sql.lstrip().upper().startswith(("CREATE", "ALTER")) for sql, _ in batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=64, help="submissions in flight")
    parser.add_argument("--leave-out", action="append", default=[], metavar="TABLE",
                        help="replay without the inserts into TABLE (repeatable), to see "
                        "what they cost: dedup_bands, raw_records, ...")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(level="warning")  # one intake line per request would measure the terminal
    corpus = load_corpus(CORPUS_DIR)
    rng = random.Random(1)
    bodies = [compose(rng, n, corpus=corpus).encode() for n in range(args.requests)]
    results = [measure(bodies, dedup, args.concurrency, args.leave_out)
               for dedup in (False, True)]
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
        return 0
    texts = "real message sentences" if corpus else "synthetic phrases"
    print(f"intake transactions replayed on SQLite (WAL, synchronous=FULL): "
          f"{args.requests} web submissions, {args.concurrency} in flight, texts: {texts}"
          + (f"; replayed without the inserts into {', '.join(args.leave_out)}"
             if args.leave_out else "") + "\n")
    for r in results:
        print(f"dedup {'on ' if r['dedup'] else 'off'}: in-process intake {r['intake_rps']} "
              f"req/s; {r['batches']} batches, {r['statements_per_request']} statements per "
              f"request; replay {r['replay_us_per_request']} µs per request "
              f"({r['replay_cpu_us_per_request']} µs of CPU, "
              f"{r['replay_written_kb_per_request']} KB written) = at most "
              f"{r['storage_max_rps']} req/s from the storage alone")
        for kind, us in r["top_statements_us_per_request"].items():
            print(f"    {us:7.1f} µs  {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
