"""The two servers of the intake benchmark, and the gateway's store read from outside.

Each server is its own process on a free loopback port: the bare aiohttp baseline
(``bench/bare_server.py``) and the gateway on the shipped ``config/gateway.yaml`` moved
into a temporary directory. ``StoreProbe`` counts cases and outbox entries in the
gateway's store while it runs (SQLite opened read-only, or a PostgreSQL connection).
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.support.thread_cpu import stat_cpu_s

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
INTAKE_PATH = "/intake/web"

# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was up")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not healthy after {timeout:.0f} s: {url}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (all its threads), from /proc; NaN when gone."""
    seconds = stat_cpu_s(Path(f"/proc/{pid}/stat"))
    return float("nan") if seconds is None else seconds


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (a worker group's parent and its workers), from /proc."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(c) for c in children)]


def tree_cpu_seconds(pid: int) -> float:
    """``cpu_seconds`` of ``pid`` and its children alive now."""
    return sum(cpu_seconds(p) for p in process_tree(pid))


def tree_bytes_written(pid: int) -> int:
    """``bytes_written`` of ``pid`` and its children alive now."""
    return sum(bytes_written(p) for p in process_tree(pid))


def bytes_written(pid: int) -> int:
    """Bytes a live process has asked the kernel to write (``wchar``: files, WAL, logs,
    sockets too), from /proc/PID/io; -1 when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def thread_cpu(intake_url: str) -> dict[str, float]:
    """CPU seconds of the gateway's event loop and store writer threads and of its whole
    process, as its ``/metrics`` tells them (``minsheng_thread_cpu_seconds_total``); empty
    where it tells none (not Linux) or will not answer (``MINSHENG_OPS_TOKEN`` set)."""
    url = intake_url.split(INTAKE_PATH)[0] + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
    except OSError:  # urllib's HTTPError and URLError among them
        return {}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "minsheng_thread_cpu_seconds_total":
                found[sample.labels["thread"]] = sample.value
            elif sample.name == "process_cpu_seconds_total":
                found["process"] = sample.value
    return found if "event_loop" in found else {}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the gateway's store, read from outside ------------------------------------------------

COUNTS_SQL = (
    "SELECT (SELECT COUNT(*) FROM cases), "
    "(SELECT COUNT(*) FROM outbox WHERE state = 'pending'), "
    "(SELECT COUNT(*) FROM outbox WHERE state = 'delivered')"
)


@dataclass(frozen=True)
class Counts:
    cases: int
    pending: int
    delivered: int


class StoreProbe:
    """Counts cases and outbox entries: SQLite read-only, or a PostgreSQL connection."""

    def __init__(self, store_url: str) -> None:
        self.url = store_url
        self._conn: Any = None

    def _connect(self) -> Any:
        if self.url.startswith("sqlite:///"):
            path = self.url.removeprefix("sqlite:///")
            return sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None
            )
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    def counts(self) -> Counts:
        if self._conn is None:
            self._conn = self._connect()
        row = self._conn.execute(COUNTS_SQL).fetchone()
        return Counts(int(row[0]), int(row[1]), int(row[2]))

    def wait_quiet(self, timeout: float, poll: float = 0.05) -> tuple[Counts, float]:
        """Wait until nothing is pending and no case was added since the previous look;
        returns the counts and the seconds until the outbox was first seen empty."""
        began = time.monotonic()
        previous = self.counts()
        emptied: float | None = None
        while time.monotonic() - began < timeout:
            time.sleep(poll)
            now = self.counts()
            if now.pending == 0 and emptied is None:
                emptied = time.monotonic() - began
            if now.pending == 0 and now.cases == previous.cases:
                return now, emptied if emptied is not None else 0.0
            if now.pending:
                emptied = None
            previous = now
        raise RuntimeError(f"the outbox did not drain in {timeout:.0f} s: {previous}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


@contextlib.contextmanager
def store_url(engine: str, workdir: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{workdir / 'var' / 'gateway.db'}"
        return
    from tests.pg import PostgresServer, create_database

    admin = os.environ.get("MINSHENG_BENCH_PG_URL")
    server = None
    if not admin:
        server = PostgresServer()
        server.start()
        admin = server.url()
    name = f"minsheng_bench_{os.getpid()}"
    try:
        yield create_database(admin, name)
    finally:
        if server is not None:
            server.stop()
        else:
            import psycopg

            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    probe: StoreProbe | None = None
    sink_path: Path | None = None
    log_path: Path | None = None


# privacy.identifier_key of the gateways this run starts: one random key, so replicas on
# one PostgreSQL database share it as they must (docs/personal-data.md#keyed-identifiers).
ID_KEY_VAR = "MINSHENG_BENCH_IDENTIFIER_KEY"
ID_KEY = secrets.token_hex(32)


def gateway_config(workdir: Path, port: int, url: str,
                   workers: int = 1) -> tuple[dict[str, Any], Path]:
    """The shipped config/gateway.yaml, moved into ``workdir`` and onto ``port``;
    ``workers``: ``server.workers`` (bench/workers.py)."""
    raw = yaml.safe_load((REPO / "config" / "gateway.yaml").read_text(encoding="utf-8"))
    raw["data_dir"] = str(workdir / "var")
    raw.setdefault("server", {})["listen"] = f"127.0.0.1:{port}"
    if workers != 1:
        raw["server"]["workers"] = workers
    raw.setdefault("store", {})["url"] = url
    if url.startswith("postgresql"):  # a shared store needs the replicas' common key
        raw.setdefault("privacy", {})["identifier_key"] = "${" + ID_KEY_VAR + "}"
    sinks = [s for s in raw.get("sinks", []) if s.get("kind") == "jsonl"]
    if not sinks:
        raise RuntimeError("config/gateway.yaml has no jsonl sink to measure forwarding with")
    for sink in sinks:
        sink["path"] = str(workdir / "var" / Path(sink["path"]).name)
    if os.environ.get("MINSHENG_BENCH_NO_DEDUP"):  # the core alone: replays only
        raw["dedup"] = {"enabled": False}
    return raw, Path(sinks[0]["path"])


def start_bare(workdir: Path, durable: bool = False) -> Server:
    """The bare aiohttp server; ``durable``: the durable floor (``--journal``, SQLite)."""
    port = free_port()
    name = "durable floor" if durable else "bare aiohttp"
    journal = ["--journal", str(workdir / "floor.db")] if durable else []
    log = (workdir / f"{name.split()[0]}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "bare_server.py"), "--port", str(port), *journal],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
    )
    wait_healthy(f"http://127.0.0.1:{port}/healthz", proc, f"the {name} server")
    return Server(name, f"http://127.0.0.1:{port}{INTAKE_PATH}", proc)


def start_gateway(workdir: Path, url: str, engine: str, workers: int = 1) -> Server:
    port = free_port()
    config, sink_path = gateway_config(workdir, port, url, workers)
    config_path = workdir / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    log_path = workdir / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(config_path)],
            stdout=log, stderr=log, cwd=REPO, env={**os.environ, ID_KEY_VAR: ID_KEY},
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", proc, "the gateway")
    except RuntimeError as exc:
        stop(proc)
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"{exc}\n{tail}") from None
    return Server(f"gateway ({engine})", f"http://127.0.0.1:{port}{INTAKE_PATH}", proc,
                  StoreProbe(url), sink_path, log_path)
