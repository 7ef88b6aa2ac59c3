"""``bench/ingest.py --workers 1,2,4``: does ``server.workers`` add throughput here?

For each worker count N, the gateway on the shipped config with ``server.workers: N``
(a fresh data dir and store per count: SQLite, or a new database on the bench's
PostgreSQL with ``--engine postgresql``), driven by the same load generator as
``ingest.py``, measured by ``ingest.measure`` (warm-up, then the fixed duration; CPU of
the parent and all its workers; the correctness checks: every 2xx a committed case,
every case in the sink). The bare aiohttp server is measured once as the baseline.

Printed per count: requests/s, p50/p99, CPU µs per request, the cores the gateway
used (its CPU seconds over the measured seconds), and against the cores the machine has:
on a machine with fewer cores than workers plus the load generator (and the database),
more workers cannot add throughput, and the table says so rather than suggesting scaling.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from bench.ingest import LoadGenerator, Result, measure, measure_bare
from bench.servers import start_gateway, stop, store_url


def _one(args: argparse.Namespace, gen: LoadGenerator, workdir: Path, count: int) -> Result:
    here = workdir / f"workers-{count}"
    (here / "var").mkdir(parents=True, exist_ok=True)
    with store_url(args.engine, here) as url:
        server = start_gateway(here, url, args.engine, workers=count)
        try:
            return measure(server, gen, args, None)
        finally:
            stop(server.proc)
            if server.probe:
                server.probe.close()


def run(args: argparse.Namespace, gen: LoadGenerator, workdir: Path,
        config: dict[str, Any]) -> dict[str, Any]:
    baseline = measure_bare(workdir, gen, args)
    rows = []
    for count in args.workers:
        result = _one(args, gen, workdir, count)
        rows.append({
            "workers": count, "rps": round(result.load.rps, 1),
            "p50_ms": round(result.load.p50_ms, 2), "p99_ms": round(result.load.p99_ms, 2),
            "non_2xx": result.load.non_2xx,
            "cpu_us_per_request": result.cpu_us_per_request,
            "cores_used": round(result.cpu_s / max(args.duration, 1e-9), 2),
            "of_bare": round(result.load.rps / (baseline.load.rps or float("nan")), 3),
            "cases_match": result.correctness.get("cases_match"),
            "sink_complete": result.correctness.get("sink_complete"),
            "drain_s": result.forwarding.get("drain_s"),
        })
    report = {"config": config, "cores": os.cpu_count(),
              "bare_rps": round(baseline.load.rps, 1), "workers": rows}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_report(report)
    return report


def print_report(report: dict[str, Any]) -> None:
    cfg = report["config"]
    print(f"Minsheng Gateway with server.workers: {cfg['duration_s']:g} s after "
          f"{cfg['warmup_s']:g} s warm-up, {cfg['connections']} connections, "
          f"{cfg['load_generator']}, engine {cfg['engine']}")
    print(f"machine: {report['cores']} cores (shared by the load generator"
          f"{' and PostgreSQL' if cfg['engine'] == 'postgresql' else ''}); "
          f"bare aiohttp {report['bare_rps']:.1f} req/s\n")
    print(f"{'workers':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
          f"{'CPU µs/req':>12}{'cores used':>12}{'of bare':>9}{'drain s':>9}  checks")
    for row in report["workers"]:
        checks = "OK" if row["cases_match"] and row["sink_complete"] else "MISMATCH"
        print(f"{row['workers']:>8}{row['rps']:>10.1f}{row['p50_ms']:>9.2f}"
              f"{row['p99_ms']:>9.2f}{row['non_2xx']:>9}{row['cpu_us_per_request']:>12.0f}"
              f"{row['cores_used']:>12.2f}{row['of_bare'] * 100:>8.1f}%{row['drain_s']:>9.2f}"
              f"  {checks}")
    most = max(row["workers"] for row in report["workers"])
    if (report["cores"] or 1) <= most:
        print(f"\n{report['cores']} cores for up to {most} workers and the load generator: "
              "more workers cannot add throughput on this machine; the figures show what "
              "the group costs, not how it scales.")
