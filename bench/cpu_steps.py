"""The Python work of one web submission, step by step, without HTTP.

    .venv/bin/python bench/cpu_steps.py [--repeat 7] [--batch 640] [--engine postgresql]
                                        [--json]

``bench/ingest.py`` measures the process CPU per request under HTTP load; on a machine
shared with other work that figure moves by ±20 % from run to run (smaller group-commit
batches, GIL hand-offs, caches), more than most single changes buy. This one measures
the same intake work without HTTP or concurrent requests, as CPU time (``time.process_time``),
and keeps the *least* of several repetitions, which other work on the machine can only
raise:

- **event loop's part**: the ``web_form`` normalizer, ``validate_draft``, dedup's
  fingerprint (text normalization, MinHash, band keys, keyed reporter digests) and the
  routing hints, as ``Intake._process`` runs them before the transaction;
- **writer's part**: ``Intake._commit`` of each submission (replay keys and erasure
  tombstones, the dedup decision, case code, case document, look-up rows, outbox entry,
  dedup index rows) handed to the store's own writer thread as the pipeline hands it
  (``Store.write`` with its reads said ahead), 64 at a time held into one batch: on
  SQLite (WAL, ``synchronous=FULL``, the writer's pragmas) in a savepoint each; with
  ``--engine postgresql`` run whole, reads sent ahead and inserts, one statement per
  kind. The CPU of this process only: the database server's is not in it.

What it leaves out is the rest of a request: aiohttp, the middlewares, the web adapter
(rate limit, body budget, reading the body) and the log line (``bench/ingest.py
--profile`` shows those). Every repetition takes
new submissions (real message sentences, as ``bench/ingest.py``), so none is a replay.
A measurement, not a test; it prints figures and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.replicas import postgres
from bench.servers import REPO
from bench.workload import compose, load_corpus
from gateway.intake import pipeline
from gateway.model.schema import RawRecord
from gateway.model.validation import validate_draft
from gateway.server.app import build_intake
from gateway.store import Store, engine
from gateway.support.config import load_config
from gateway.support.logging import configure_logging

CORPUS_DIR = REPO.parent / "shared" / "data" / "citizen_messages"
GROUP = 64  # submissions per group-committed transaction


def submissions(repeat: int, batch: int) -> list[list[RawRecord]]:
    corpus = load_corpus(CORPUS_DIR)
    rng = random.Random(1)
    return [[RawRecord(channel="web", source="web", source_ref=f"web-{r}-{n}",
                       payload=compose(rng, r * batch + n, corpus=corpus).encode(),
                       content_type="application/json", received_at=datetime.now(UTC))
             for n in range(batch)] for r in range(repeat)]


async def measure(store_url: str, workdir: Path, raws: list[list[RawRecord]]
                  ) -> dict[str, list[float]]:
    config = load_config(REPO / "config" / "gateway.yaml")
    config.data_dir = workdir
    config.store.url = store_url
    store = Store.from_url(config.store.url)
    await store.start()
    intake = build_intake(config, store)
    binding = intake.bindings["web"]
    loop_us: list[float] = []
    writer_us: list[float] = []
    try:
        for batch in raws:
            began = time.process_time()
            prepared = []
            for raw in batch:
                draft = binding.normalizer(raw, binding.context)
                validate_draft(draft)
                prepared.append(intake.prepare(pipeline._Journal(raw), draft))
            loop_us.append((time.process_time() - began) / len(batch) * 1e6)
            spent = 0.0
            for start in range(0, len(prepared), GROUP):
                spent += await commit_group(store, intake, prepared[start:start + GROUP])
            writer_us.append(spent / len(batch) * 1e6)
    finally:
        await store.close()
    return {"loop": loop_us, "writer": writer_us}


async def commit_group(store: Store, intake: pipeline.Intake,
                       group: list[pipeline._Prepared]) -> float:
    """CPU seconds of this process while the store's writer commits ``group`` as one
    batch, as ``Intake._process`` hands each over (the pipeline's own private steps):
    queued while the writer is held, so the batch is exactly the group."""
    started, release = threading.Event(), threading.Event()

    def hold(tx: engine.Tx) -> None:
        started.set()
        release.wait(60)

    holding = asyncio.ensure_future(store.write(hold))
    await asyncio.to_thread(started.wait, 60)
    writes = [asyncio.ensure_future(store.write(
        lambda tx, ready=ready: intake._commit(tx, ready), intake._read_ahead(ready)))
        for ready in group]
    await asyncio.sleep(0)  # every write queued
    began = time.process_time()
    release.set()
    await holding
    results = await asyncio.gather(*writes)
    spent = time.process_time() - began
    assert all(r.outcome in ("new", "related", "repeat") for r in results), results
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="repetitions (the least kept)")
    parser.add_argument("--batch", type=int, default=640, help="submissions per repetition")
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite",
                        help="the store the writer's part commits to (postgresql: a "
                             "throwaway server, or MINSHENG_BENCH_PG_URL's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(level="error")  # not the local key file's warning
    raws = submissions(args.repeat, args.batch)
    with tempfile.TemporaryDirectory(prefix="minsheng-cpu-steps-") as tmp:
        if args.engine == "sqlite":
            found = asyncio.run(measure(f"sqlite:///{tmp}/intake.db", Path(tmp), raws))
        else:
            with postgres() as server:
                found = asyncio.run(measure(server.database("cpu_steps"), Path(tmp), raws))
    result: dict[str, Any] = {
        f"{part}_us": {"least": round(min(values), 1),
                       "median": round(sorted(values)[len(values) // 2], 1)}
        for part, values in found.items()
    }
    result["total_least_us"] = round(min(found["loop"]) + min(found["writer"]), 1)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"CPU per web submission ({args.engine}), least (median) of "
          f"{args.repeat} × {args.batch}:")
    print(f"  event loop's part  {result['loop_us']['least']:7.1f} µs "
          f"({result['loop_us']['median']:.1f})")
    print(f"  writer's part      {result['writer_us']['least']:7.1f} µs "
          f"({result['writer_us']['median']:.1f})")
    print(f"  together           {result['total_least_us']:7.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
