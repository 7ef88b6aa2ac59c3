"""``bench/ingest.py --engine postgresql --replicas 1,2``: do replicas add throughput?

For each replica count N, N gateway processes (the shipped config, each with its own
data dir, log and jsonl sink) share one PostgreSQL database (the bench's own throwaway
server, as for ``--engine postgresql``). The load is the same as for one gateway, its
connections dealt round-robin over the replicas: one load generator per replica with
``connections / N`` connections, all started together for the same duration. The bare
aiohttp server is measured in the same run as the baseline.

Reported per count: each replica's and the total requests/s, p99, the cores used during
the measured seconds (CPU seconds of the gateways, of the PostgreSQL server's processes
and of the load generators, divided by the duration) and the correctness checks of
``ingest.py`` over the whole group (every 2xx a committed case, every case in a sink).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.ingest import Load, LoadGenerator, measure_bare, sink_summary
from bench.servers import (
    Server,
    StoreProbe,
    children_cpu,
    cpu_seconds,
    start_gateway,
    stop,
)
from tests.round_trips import RoundTripProxy

MAX_RUNS = 9  # a run's serials are run * 10_000_000 + …: 8-digit phone serials


def parse_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("--replicas wants counts like 1,2")
    return counts


@dataclass
class Postgres:
    """The server the replicas' database is on, and the processes of that server (their
    CPU is part of what a replica costs); none known for an external server."""

    admin_url: str
    postmaster: int | None

    def database(self, name: str) -> str:
        """A new empty database: each replica count starts from an empty store."""
        from tests.pg import create_database

        return create_database(self.admin_url, f"{name}_{os.getpid()}")

    def pids(self) -> list[int]:
        if self.postmaster is None:
            return []
        found = [self.postmaster]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(stat[1]) == self.postmaster:
                        found.append(int(entry.name))
        return found


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """A throwaway server (tests/pg.py), or ``MINSHENG_BENCH_PG_URL``'s."""
    from tests.pg import PostgresServer

    admin = os.environ.get("MINSHENG_BENCH_PG_URL")
    if admin:
        yield Postgres(admin, None)
        return
    server = PostgresServer()
    server.start()
    try:
        pid_file = server.dir / "data" / "postmaster.pid"
        yield Postgres(server.url(), int(pid_file.read_text().split()[0]))
    finally:
        server.stop()


WAITS_SQL = (
    "SELECT COALESCE(wait_event_type, 'CPU') || ':' || COALESCE(wait_event, '-') "
    "FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active' "
    "AND pid <> pg_backend_pid() AND datname = current_database()"
)


class WaitSampler:
    """What the database's busy sessions wait on, sampled every ``every`` seconds while
    the load runs: ``Lock:advisory`` or ``Lock:transactionid`` in the lead would mean
    the replicas wait for each other (a lock shared by every intake)."""

    def __init__(self, url: str, every: float = 0.1) -> None:
        self.url = url
        self.every = every
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(self.every):
                self.samples += 1
                self.counts.update(str(r[0]) for r in conn.execute(WAITS_SQL).fetchall())

    def summary(self) -> dict[str, float]:
        """Busy sessions per sample, by what they wait on (most first)."""
        n = max(self.samples, 1)
        return {k: round(v / n, 2) for k, v in self.counts.most_common(6)}


def _cpu(pids: list[int]) -> dict[int, float]:
    return {pid: cpu_seconds(pid) for pid in pids}


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two looks, over the processes alive at both."""
    return sum(after[p] - before[p] for p in before if p in after
               and after[p] == after[p] and before[p] == before[p])  # skip NaN (gone)


class Group:
    """N gateway replicas on one database, loaded together."""

    def __init__(self, db: Postgres, url: str, servers: list[Server],
                 gen: LoadGenerator, proxy: RoundTripProxy | None = None) -> None:
        self.db = db
        self.url = url
        self.servers = servers
        self.gen = gen
        self.probe = StoreProbe(url)
        self.proxy = proxy  # the gateways' way to the database, when it is held

    def load(self, duration: float) -> list[Load]:
        n = len(self.servers)
        if self.gen.runs + n > MAX_RUNS:
            raise RuntimeError(f"too many load runs for distinct phone serials (> {MAX_RUNS}): "
                               "measure fewer replica counts per invocation")
        gens = [replace(self.gen, connections=max(1, self.gen.connections // n),
                        runs=self.gen.runs + i) for i in range(n)]
        self.gen.runs += n
        with ThreadPoolExecutor(max_workers=n) as pool:
            futures = [pool.submit(g.run, s.url, duration)
                       for g, s in zip(gens, self.servers, strict=True)]
            return [f.result() for f in futures]

    def measure(self, args: argparse.Namespace) -> dict[str, Any]:
        self.load(args.warmup)
        before, _ = self.probe.wait_quiet(args.drain_timeout)
        gateways = [s.proc.pid for s in self.servers]
        cpu_gw, cpu_db = _cpu(gateways), _cpu(self.db.pids())
        gen_before = children_cpu()
        if self.proxy is not None:
            self.proxy.reset()
        with WaitSampler(self.url) as waits:
            loads = self.load(args.duration)
        gen_cpu = children_cpu() - gen_before
        round_trips = self.proxy.reset() if self.proxy is not None else None
        cpu_gw_s = _spent(cpu_gw, _cpu(gateways))
        cpu_db_s = _spent(cpu_db, _cpu(self.db.pids()))
        at_stop = self.probe.counts()
        after, drain_s = self.probe.wait_quiet(args.drain_timeout)
        duration = max(x.duration_s for x in loads)
        requests = sum(x.requests for x in loads)
        ok = sum(x.ok_2xx for x in loads)
        in_flight = sum(min(max(x.sent - x.requests - x.socket_errors, 0), args.connections)
                        for x in loads)
        new_cases = after.cases - before.cases
        kinds: dict[str, str] = {}
        for server in self.servers:
            kinds.update(sink_summary(server.sink_path)[1])
        return {
            "replicas": len(self.servers),
            "per_replica_rps": [round(x.rps, 1) for x in loads],
            "total_rps": round(sum(x.rps for x in loads), 1),
            "p99_ms": round(max(x.p99_ms for x in loads), 2),
            "non_2xx": sum(x.non_2xx for x in loads),
            "cpu_us_per_request_gateways": round(cpu_gw_s / max(requests, 1) * 1e6, 1),
            "cores_used": {
                "gateways": round(cpu_gw_s / duration, 2),
                "postgresql": round(cpu_db_s / duration, 2) if self.db.postmaster else None,
                "load_generators": round(gen_cpu / duration, 2),
            },
            "database_waits": waits.summary(),
            # every wait of every gateway connection (writer, case-code blocks, forwarder,
            # readers) for the server, per request: counted by the proxy, so only when
            # --db-delay-ms puts one in the way
            "round_trips_per_request": (round(round_trips / max(requests, 1), 2)
                                        if round_trips is not None else None),
            "correctness": {
                "new_cases": new_cases, "ok_2xx": ok, "in_flight_at_stop": in_flight,
                "cases_match": 0 <= new_cases - ok <= in_flight,
                "pending_at_stop": at_stop.pending, "drain_s": round(drain_s, 2),
                "sink_complete": len(kinds) == after.cases,
            },
        }

    def close(self) -> None:
        for server in reversed(self.servers):
            stop(server.proc)
        self.probe.close()


def run(args: argparse.Namespace, gen: LoadGenerator, workdir: Path) -> dict[str, Any]:
    if args.engine != "postgresql":
        raise RuntimeError("--replicas shares one database between gateway processes: "
                           "use --engine postgresql")
    report: dict[str, Any] = {"cores": os.cpu_count(), "connections": args.connections,
                              "duration_s": args.duration, "db_delay_ms": args.db_delay_ms,
                              "groups": []}
    with postgres() as db:
        report["bare_rps"] = round(measure_bare(workdir, gen, args).load.rps, 1)
        for count in args.replicas:
            servers: list[Server] = []
            group = None
            url = db.database(f"minsheng_replicas_{count}")
            proxy = RoundTripProxy(url, args.db_delay_ms / 1000) if args.db_delay_ms else None
            try:
                for i in range(count):
                    folder = workdir / f"replicas-{count}" / f"replica-{i}"
                    folder.mkdir(parents=True)
                    servers.append(start_gateway(folder, proxy.url if proxy else url,
                                                 "postgresql"))
                group = Group(db, url, servers, gen, proxy)
                report["groups"].append(group.measure(args))
            finally:
                if group is not None:
                    group.close()
                else:
                    for server in servers:
                        stop(server.proc)
                if proxy is not None:
                    proxy.close()
    return report


def print_report(report: dict[str, Any]) -> None:
    bare = report["bare_rps"]
    print(f"Replicas on one PostgreSQL: {report['duration_s']:g} s, {report['connections']} "
          f"connections dealt round-robin, {report['cores']} cores, database answers "
          f"held {report['db_delay_ms']:g} ms; bare aiohttp "
          f"{bare:.1f} req/s in the same run\n")
    print(f"{'replicas':>9}{'total req/s':>13}{'of bare':>9}{'p99 ms':>9}{'non-2xx':>9}"
          f"{'cores gw':>10}{'cores pg':>10}{'cores load':>12}  per replica req/s")
    for g in report["groups"]:
        cores = g["cores_used"]
        pg = "n/a" if cores["postgresql"] is None else f"{cores['postgresql']:.2f}"
        print(f"{g['replicas']:>9}{g['total_rps']:>13.1f}{g['total_rps'] / bare * 100:>8.1f}%"
              f"{g['p99_ms']:>9.2f}{g['non_2xx']:>9}{cores['gateways']:>10.2f}{pg:>10}"
              f"{cores['load_generators']:>12.2f}  "
              + ", ".join(f"{x:.1f}" for x in g["per_replica_rps"]))
    for g in report["groups"]:
        waits = ", ".join(f"{k} {v:g}" for k, v in g["database_waits"].items()) or "none"
        trips = g["round_trips_per_request"]
        held = f"; waits for the server per request: {trips:g}" if trips is not None else ""
        print(f"{g['replicas']} replica(s), busy database sessions per sample: {waits}{held}")
    for g in report["groups"]:
        ok = g["correctness"]
        verdict = "OK" if ok["cases_match"] and ok["sink_complete"] else "MISMATCH"
        print(f"{g['replicas']} replica(s): {ok['new_cases']} cases for {ok['ok_2xx']} 2xx "
              f"({ok['in_flight_at_stop']} in flight at stop), outbox drained in "
              f"{ok['drain_s']:.2f} s, every case in a sink: {verdict}")
