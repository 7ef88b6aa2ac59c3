"""Intake benchmark: the gateway against a bare aiohttp server, same load, same machine.

    .venv/bin/python bench/ingest.py [--duration 10] [--connections 64]
                                     [--engine sqlite|postgresql] [--json]
    .venv/bin/python bench/ingest.py --engine postgresql --replicas 1,2
    .venv/bin/python bench/ingest.py --workers 1,2,4 [--engine postgresql]

Starts, each as its own process on a free loopback port, a bare aiohttp server
(``bench/bare_server.py``: read the JSON body, answer 202), the same server as a
*durable floor* (``--journal``: it also group-commits the raw body into SQLite, WAL,
synchronous=FULL, before answering) and the gateway on its
shipped defaults (``config/gateway.yaml``) in a temporary directory: SQLite store (WAL,
synchronous=FULL) or PostgreSQL, the web source, a jsonl sink, ``info`` logging to a
file. Drives all three with the same load generator (wrk with ``bench/workload.py``'s
script; ``bench/loadgen.py`` when wrk is missing), a new submission per request: a
warm-up, then a fixed duration.

Reports per server requests/s, p50/p99 latency, non-2xx, CPU and file writes per
request; the ratio gateway/bare against the target (≥ 50 %) and floor/bare (what
durability alone costs); how fast the outbox was
forwarded to the sink during the run and how long it took to drain after it; checks
that every 2xx answer is a committed case and every case reached the sink; and how
dedup classified the cases. A benchmark, not a test: it exits 0 once it has run,
whatever the figures, and 2 if it could not run. bench/README.md says more.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench import hotspots, workload
from bench.servers import (
    BENCH,
    Counts,
    Server,
    children_cpu,
    process_tree,
    start_bare,
    start_gateway,
    stop,
    store_url,
    thread_cpu,
    tree_bytes_written,
    tree_cpu_seconds,
)

TARGET_RATIO = 0.5
CORPUS_DIR = BENCH.parents[1] / "shared" / "data" / "citizen_messages"


# -- load ----------------------------------------------------------------------------------


@dataclass
class Load:
    """What the load generator saw; ``sent - requests`` were in flight when it stopped."""

    requests: int
    duration_s: float
    ok_2xx: int
    non_2xx: int
    socket_errors: int
    sent: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


@dataclass
class LoadGenerator:
    tool: str  # wrk | python
    connections: int
    threads: int
    lua: Path
    one_reporter: bool
    corpus: Path | None  # Corpus.save folder: real sentences; None: synthetic text
    runs: int = 0  # load runs so far: each gets its own serials (phone numbers)

    def command(self, url: str, duration: float) -> list[str]:
        self.runs += 1
        if self.tool == "wrk":
            return ["wrk", f"-t{self.threads}", f"-c{self.connections}", f"-d{duration:g}s",
                    "--timeout", "10s", "--latency", "-s", str(self.lua), url, "--",
                    str(self.runs), *([str(self.corpus)] if self.corpus else [])]
        return [sys.executable, str(BENCH / "loadgen.py"), url, "--duration", f"{duration:g}",
                "--connections", str(self.connections), "--run", str(self.runs),
                *(["--one-reporter"] if self.one_reporter else []),
                *(["--corpus", str(self.corpus)] if self.corpus else [])]

    def run(self, url: str, duration: float) -> Load:
        cpu_before = children_cpu()
        done = subprocess.run(self.command(url, duration), capture_output=True, text=True,
                              timeout=duration + 120)
        cpu = children_cpu() - cpu_before
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"{self.tool} failed ({done.returncode}): {done.stderr[-2000:]}")
        raw = json.loads(lines[-1].removeprefix("BENCH_JSON "))
        if self.tool == "wrk":
            _cross_check_wrk(done.stdout, raw)
        return Load(
            requests=raw["requests"], duration_s=raw["duration_us"] / 1e6, ok_2xx=raw["ok_2xx"],
            non_2xx=raw["requests"] - raw["ok_2xx"], socket_errors=raw["socket_errors"],
            sent=raw["sent"], p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000, max_ms=raw["max_us"] / 1000, generator_cpu_s=cpu,
        )


def _cross_check_wrk(text: str, raw: dict[str, Any]) -> None:
    """wrk's own 'Non-2xx or 3xx responses' line must agree with the script's 2xx count."""
    stated = 0
    for line in text.splitlines():
        if "Non-2xx or 3xx responses:" in line:
            stated = int(line.rsplit(":", 1)[1])
    if raw["requests"] - raw["ok_2xx"] != stated:
        raise RuntimeError(f"wrk says {stated} non-2xx/3xx, its script counted "
                           f"{raw['requests'] - raw['ok_2xx']} non-2xx")


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).split("Copyright")[0].strip()


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Result:
    server: str
    load: Load
    cpu_s: float
    cpu_us_per_request: float
    written_kb_per_request: float
    # the gateway alone (one process): CPU µs per request of its event loop thread, its
    # store writer thread and the rest of the process (/metrics); else empty
    threads_us_per_request: dict[str, float] = field(default_factory=dict)
    forwarding: dict[str, Any] = field(default_factory=dict)
    correctness: dict[str, Any] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["load"]["rps"] = round(self.load.rps, 1)
        return body


def measure(server: Server, gen: LoadGenerator, args: argparse.Namespace,
            profile_to: Path | None) -> Result:
    gen.run(server.url, args.warmup)
    before = server.probe.wait_quiet(args.drain_timeout)[0] if server.probe else None
    # the process and its children: a worker group's workers (bench/workers.py)
    pid = server.proc.pid
    one_gateway = server.probe is not None and len(process_tree(pid)) == 1
    threads_before = thread_cpu(server.url) if one_gateway else {}
    cpu_before, written_before = tree_cpu_seconds(pid), tree_bytes_written(pid)
    recorder = None
    if profile_to is not None:
        recorder = hotspots.start(server.proc.pid, args.duration, profile_to, args.profile_gil)
    load = gen.run(server.url, args.duration)
    cpu = tree_cpu_seconds(pid) - cpu_before
    written = tree_bytes_written(pid) - written_before
    threads_after = thread_cpu(server.url) if threads_before else {}
    if recorder is not None:
        hotspots.finish(recorder)
    per = max(load.requests, 1)
    result = Result(server.name, load, round(cpu, 2), round(cpu / per * 1e6, 1),
                    round(written / per / 1024, 2),
                    _per_request(threads_before, threads_after, per))
    if server.probe is not None and before is not None:
        _forwarding_and_correctness(server, before, load, args, result)
    return result


def _per_request(before: dict[str, float], after: dict[str, float],
                 requests: int) -> dict[str, float]:
    """Each thread's CPU µs per request between two scrapes; ``other``: the process's
    threads but the event loop and the writer (readers, executors, the forwarder's)."""
    if not before or not after:
        return {}
    grew = {k: (after[k] - before.get(k, 0.0)) / requests * 1e6 for k in after}
    grew["other"] = grew.pop("process", 0.0) - grew["event_loop"] - grew.get("store_writer", 0.0)
    return {k: round(v, 1) for k, v in grew.items()}


def measure_bare(workdir: Path, gen: LoadGenerator, args: argparse.Namespace) -> Result:
    """The bare aiohttp server measured alone: the baseline of a run's ratios."""
    bare = start_bare(workdir)
    try:
        return measure(bare, gen, args, None)
    finally:
        stop(bare.proc)

def _forwarding_and_correctness(server: Server, before: Counts, load: Load,
                                args: argparse.Namespace, result: Result) -> None:
    assert server.probe is not None
    at_stop = server.probe.counts()
    after, drain_s = server.probe.wait_quiet(args.drain_timeout)
    delivered_in_run = at_stop.delivered - before.delivered
    new_cases = after.cases - before.cases
    result.forwarding = {
        "delivered_during_run": delivered_in_run,
        "forwarded_per_s_during_run": round(delivered_in_run / load.duration_s, 1),
        "pending_at_stop": at_stop.pending,
        "drain_s": round(drain_s, 2),
        "forwarded_per_s_overall": round(new_cases / (load.duration_s + drain_s), 1),
    }
    # wrk stops with a request outstanding on (nearly) every connection; their cases are
    # committed but never counted as 2xx. The python generator waits for them (0 here).
    in_flight = min(max(load.sent - load.requests - load.socket_errors, 0), args.connections)
    extra = new_cases - load.ok_2xx  # < 0: an acknowledged submission is not in the store
    sink_lines, kinds = sink_summary(server.sink_path)
    result.correctness = {
        "new_cases": new_cases, "ok_2xx": load.ok_2xx, "in_flight_at_stop": in_flight,
        "cases_match": 0 <= extra <= in_flight,
        "exact": extra == 0,
        "total_cases": after.cases, "sink_lines": sink_lines, "sink_distinct_cases": len(kinds),
        "sink_complete": len(kinds) == after.cases,
        "dedup_kinds": dict(Counter(kinds.values())),
    }
    result.log = _log_summary(server.log_path)


def sink_summary(path: Path | None) -> tuple[int, dict[str, str]]:
    """Lines in the sink file, and each case's dedup kind (its latest line wins)."""
    lines = 0
    kinds: dict[str, str] = {}
    if path is None or not path.exists():
        return lines, kinds
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            lines += 1
            doc = json.loads(line)
            if doc.get("case_code"):
                kinds[doc["case_code"]] = str((doc.get("dedup") or {}).get("kind", "?"))
    return lines, kinds


def _log_summary(path: Path | None) -> dict[str, Any]:
    """Lines and bytes of the gateway's log, by level, and the outcomes of intake events."""
    levels: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    lines = 0
    size = path.stat().st_size if path and path.exists() else 0
    if path and path.exists():
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                lines += 1
                try:
                    event = json.loads(line)
                except ValueError:
                    levels["unparsed"] += 1
                    continue
                levels[str(event.get("level", "?"))] += 1
                if event.get("event") == "intake":
                    outcomes[str(event.get("outcome"))] += 1
    return {"lines": lines, "bytes": size, "levels": dict(levels),
            "intake_outcomes": dict(outcomes)}


# -- report --------------------------------------------------------------------------------


def print_report(report: dict[str, Any], bare: Result, floor: Result, gateway: Result) -> None:
    cfg = report["config"]
    print(f"Minsheng Gateway intake benchmark: {cfg['duration_s']:g} s after "
          f"{cfg['warmup_s']:g} s warm-up, {cfg['connections']} connections, "
          f"{cfg['load_generator']}, engine {cfg['engine']}")
    load = " ".join(f"{x:.2f}" for x in cfg["loadavg_before"])
    print(f"submissions: web mailbox JSON, reporters: {cfg['reporters']}; texts: "
          f"{cfg['texts']}")
    print(f"machine: {cfg['cores']} cores, load average before the run {load}\n")
    print(f"{'':20}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'sock err':>9}"
          f"{'CPU µs/req':>12}{'written KB/req':>16}")
    for r in (bare, floor, gateway):
        x = r.load
        print(f"{r.server:20}{x.rps:>10.1f}{x.p50_ms:>9.2f}{x.p99_ms:>9.2f}{x.non_2xx:>9}"
              f"{x.socket_errors:>9}{r.cpu_us_per_request:>12.0f}"
              f"{r.written_kb_per_request:>16.1f}")
    if gateway.threads_us_per_request:
        split = ", ".join(f"{name.replace('_', ' ')} {us:.0f}"
                          for name, us in gateway.threads_us_per_request.items())
        print(f"{'':20}gateway CPU µs/req by thread: {split}")
    print(f"\nratio gateway/bare: {report['ratio'] * 100:.1f} % (target ≥ "
          f"{TARGET_RATIO * 100:.0f} %): {report['verdict']}")
    print(f"ratio durable floor/bare: {report['floor_ratio'] * 100:.1f} % (the cost of "
          f"group-committing each body to SQLite alone)")
    fwd, ok = gateway.forwarding, gateway.correctness
    print(f"forwarding (jsonl sink): {fwd['forwarded_per_s_during_run']:.1f} deliveries/s "
          f"during the run ({fwd['pending_at_stop']} pending when it stopped, drained in "
          f"{fwd['drain_s']:.2f} s; {fwd['forwarded_per_s_overall']:.1f} cases/s overall)")
    verdict = "OK" if ok["cases_match"] else "MISMATCH"
    print(f"correctness: {ok['new_cases']} cases committed for {ok['ok_2xx']} 2xx answers "
          f"({ok['in_flight_at_stop']} requests in flight when the load stopped): {verdict}; "
          f"sink holds {ok['sink_distinct_cases']} of {ok['total_cases']} cases "
          f"({ok['sink_lines']} lines): {'OK' if ok['sink_complete'] else 'INCOMPLETE'}")
    print(f"dedup of the cases in the sink (whole run): {ok['dedup_kinds']}")
    log = gateway.log
    print(f"gateway log: {log['lines']} lines, {log['bytes'] / 1e6:.1f} MB, levels "
          f"{log['levels']}, intake outcomes {log['intake_outcomes']}")
    if report.get("profile"):
        print("\n" + hotspots.render(report["profile"]))


# -- main ------------------------------------------------------------------------------------


def _replica_counts(text: str) -> list[int]:
    from bench.replicas import parse_counts

    return parse_counts(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (2 cores here)")
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--texts", choices=["auto", "corpus", "synthetic"], default="auto",
                        help="real message sentences from shared/data (auto: when found)")
    parser.add_argument("--one-reporter", action="store_true",
                        help="every submission from 13800138000 (default: one number each)")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="record the gateway with py-spy during the run (raw stacks)")
    parser.add_argument("--profile-gil", action="store_true",
                        help="with --profile: sample only the thread holding the GIL")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--workers", type=_replica_counts, metavar="N,N",
                        help="measure the gateway with server.workers at each count "
                             "(bench/workers.py)")
    parser.add_argument("--db-delay-ms", type=float, default=0.0, metavar="MS",
                        help="with --replicas: the gateways reach PostgreSQL through a proxy "
                             "that holds each answer MS ms (a database a network hop away)")
    parser.add_argument("--replicas", type=_replica_counts, metavar="N,N",
                        help="PostgreSQL: N gateway processes on one database per count, "
                             "the load dealt round-robin (bench/replicas.py)")
    return parser.parse_args(argv)


def load_generator(args: argparse.Namespace, workdir: Path) -> LoadGenerator:
    tool = args.generator
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    lua = workdir / "intake.lua"
    lua.write_text(workload.wrk_script(args.one_reporter), encoding="utf-8")
    corpus = None
    if args.texts != "synthetic":
        corpus = workload.load_corpus(CORPUS_DIR)
        if corpus is None and args.texts == "corpus":
            raise RuntimeError(f"no citizen messages in {CORPUS_DIR}")
    folder = corpus.save(workdir / "corpus") if corpus else None
    return LoadGenerator(tool, args.connections, args.threads, lua, args.one_reporter, folder)


def _texts(gen: LoadGenerator) -> str:
    if gen.corpus is None:
        return "synthetic phrases (more alike than real text: dedup works harder)"
    count = len(workload.Corpus.read(gen.corpus).sentences)
    return f"sentences of real citizen messages ({count} from {CORPUS_DIR})"


def describe(args: argparse.Namespace, gen: LoadGenerator, workdir: Path) -> dict[str, Any]:
    if gen.tool == "wrk":
        generator = f"{wrk_version()}, {args.threads} thread(s)"
    else:
        generator = "bench/loadgen.py (python aiohttp client)"
        generator += "; wrk not found" if args.generator == "auto" else ""
    return {
        "duration_s": args.duration, "warmup_s": args.warmup, "connections": args.connections,
        "engine": args.engine, "load_generator": generator, "cores": os.cpu_count(),
        "reporters": "one (13800138000)" if args.one_reporter else "one per request",
        "texts": _texts(gen),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), "workdir": str(workdir) if args.keep else None,
    }


def serve_and_measure(
    args: argparse.Namespace, gen: LoadGenerator, workdir: Path
) -> tuple[Result, Result, Result]:
    """All servers up at once; measured one after the other (bare, floor, gateway)."""
    with store_url(args.engine, workdir) as url:
        servers: list[Server] = []
        try:
            servers.append(start_bare(workdir))
            servers.append(start_bare(workdir, durable=True))
            servers.append(start_gateway(workdir, url, args.engine))
            bare, floor, gateway = servers
            return (measure(bare, gen, args, None), measure(floor, gen, args, None),
                    measure(gateway, gen, args, args.profile))
        finally:
            for server in reversed(servers):
                stop(server.proc)
                if server.probe:
                    server.probe.close()


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    gen = load_generator(args, workdir)
    if args.replicas:
        return run_replicas(args, gen, workdir)
    if args.workers:
        from bench import workers

        return workers.run(args, gen, workdir, describe(args, gen, workdir))
    report: dict[str, Any] = {"config": describe(args, gen, workdir)}
    bare_result, floor_result, gw_result = serve_and_measure(args, gen, workdir)
    bare_rps = bare_result.load.rps or float("nan")
    ratio = gw_result.load.rps / bare_rps
    report.update({
        "bare": bare_result.as_json(), "floor": floor_result.as_json(),
        "gateway": gw_result.as_json(), "ratio": round(ratio, 3),
        "floor_ratio": round(floor_result.load.rps / bare_rps, 3), "target": TARGET_RATIO,
        "verdict": "PASS" if ratio >= TARGET_RATIO else "BELOW TARGET",
    })
    if args.profile:
        report["profile"] = hotspots.summarize(
            args.profile, gw_result.load.requests, args.profile_gil)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_report(report, bare_result, floor_result, gw_result)
    return report


def run_replicas(args: argparse.Namespace, gen: LoadGenerator, workdir: Path) -> dict[str, Any]:
    from bench import replicas

    report = {"config": describe(args, gen, workdir), **replicas.run(args, gen, workdir)}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        replicas.print_report(report)
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="minsheng-bench-"))
    try:
        run(args, workdir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
