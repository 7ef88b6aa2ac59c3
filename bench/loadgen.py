"""The fallback load generator of the intake benchmark, for machines without ``wrk``.

One process, one aiohttp client, ``--connections`` workers each keeping one request in
flight on its own connection for ``--duration`` seconds, each request a new submission
from ``bench/workload.py``. At the deadline no new request is sent and those in flight
are awaited, so every request sent is counted (``sent`` == ``requests + errors``).
Prints one JSON line with the same keys ``bench/ingest.py`` reads from wrk. Far slower
than wrk: with it the figures measure the client as much as the servers.

    .venv/bin/python bench/loadgen.py URL --duration 10 --connections 64 --run 1 [--corpus DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench import workload

HEADERS = {"Content-Type": "application/json"}
PER_WORKER = 100_000  # serials of one worker in one run


@dataclass
class Tally:
    latencies_us: list[int] = field(default_factory=list)
    ok_2xx: int = 0
    non_2xx: int = 0
    errors: int = 0
    sent: int = 0


@dataclass(frozen=True)
class Workload:
    run: int
    one_reporter: bool
    corpus: workload.Corpus | None


async def _worker(
    session: aiohttp.ClientSession, url: str, work: Workload, index: int, deadline: float,
    tally: Tally,
) -> None:
    rng = random.Random(work.run * 7919 + index * 104729 + 1)
    serial = workload.serial_base(work.run, index, PER_WORKER)
    while time.monotonic() < deadline:
        serial += 1
        body = workload.compose(rng, serial, work.one_reporter, work.corpus).encode("utf-8")
        tally.sent += 1
        began = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=HEADERS) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            tally.errors += 1
            continue
        tally.latencies_us.append(int((time.perf_counter() - began) * 1e6))
        if 200 <= status < 300:
            tally.ok_2xx += 1
        else:
            tally.non_2xx += 1


def _percentile(ordered: list[int], pct: float) -> int:
    if not ordered:
        return 0
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def run(url: str, work: Workload, duration: float, connections: int) -> dict[str, int]:
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.monotonic()
        deadline = began + duration
        await asyncio.gather(*(
            _worker(session, url, work, i, deadline, tally) for i in range(connections)
        ))
        elapsed = time.monotonic() - began
    ordered = sorted(tally.latencies_us)
    return {
        "requests": len(ordered), "duration_us": int(elapsed * 1e6),
        "ok_2xx": tally.ok_2xx, "status_errors": tally.non_2xx, "socket_errors": tally.errors,
        "sent": tally.sent, "p50_us": _percentile(ordered, 50), "p90_us": _percentile(ordered, 90),
        "p99_us": _percentile(ordered, 99), "max_us": ordered[-1] if ordered else 0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--run", type=int, default=0, help="run number: serials differ by run")
    parser.add_argument("--one-reporter", action="store_true")
    parser.add_argument("--corpus", type=Path, help="folder of sentences.txt and subjects.txt")
    args = parser.parse_args(argv)
    corpus = workload.Corpus.read(args.corpus) if args.corpus else None
    work = Workload(args.run, args.one_reporter, corpus)
    result = asyncio.run(run(args.url, work, args.duration, args.connections))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
