"""The public edge under hostile input: how long each attack holds the gateway.

    .venv/bin/python bench/edge.py [--only NAME ...] [--seconds 15] [--json]

Starts the gateway on the shipped config (as ``bench/ingest.py`` does: its own process,
a temporary directory, SQLite) and fires the attacks of issue 11 at it one after the
other, while a prober fetches ``/healthz`` on a fresh connection every 50 ms. For each
attack it prints the worst ``/healthz`` latency, how many probes failed, the worst
event-loop hold the gateway logged (``event_loop_held``; "n/a" on a branch without the
loop monitor) and what the attack's own requests were answered. Figures, not
assertions: it runs on any branch and reports; exit 0 once it ran, 2 if it could not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.servers import Server, start_gateway, stop, store_url

PROBE_EVERY_S = 0.05
CLIENT_TIMEOUT_S = 300.0


@dataclass
class Outcome:
    """What one attack did to the gateway."""

    attack: str
    seconds: float
    healthz_worst_ms: float
    healthz_failed: int
    healthz_probes: int
    loop_hold_worst_ms: float | None
    answers: dict[str, int] = field(default_factory=dict)


@dataclass
class Target:
    base: str
    host: str
    port: int
    log_path: Path
    seconds: float


Attack = Callable[[Target], Awaitable[Counter[str]]]


# -- attacks ----------------------------------------------------------------------------


async def post(target: Target, path: str, body: bytes, headers: dict[str, str]) -> str:
    """POST ``body``; the status, or the error class when there was no answer."""
    async with httpx.AsyncClient(base_url=target.base, timeout=CLIENT_TIMEOUT_S) as client:
        try:
            return str((await client.post(path, content=body, headers=headers)).status_code)
        except httpx.HTTPError as exc:
            return type(exc).__name__


async def form_40k_fields(target: Target) -> Counter[str]:
    body = await asyncio.to_thread(
        lambda: "&".join(f"field_{i:05d}_{'x' * 40}=" for i in range(40_000)).encode())
    kind = {"Content-Type": "application/x-www-form-urlencoded"}
    return Counter([await post(target, "/intake/web", body, kind)])


async def multipart_many_parts(target: Target) -> Counter[str]:
    boundary = "b0undary"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="p"\r\n\r\nx\r\n'
    body = await asyncio.to_thread(lambda: (part * 50_000 + f"--{boundary}--\r\n").encode())
    kind = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return Counter([await post(target, "/intake/web", body, kind)])


async def deep_json(target: Target) -> Counter[str]:
    depth = 50_000
    body = ('{"name":"王","phone":"13800138000","content":' + "[" * depth + "]" * depth
            + "}").encode()
    return Counter([await post(target, "/intake/web", body,
                               {"Content-Type": "application/json"})])


def gzip_bomb(inflated_mb: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    zeros = b"\0" * (1 << 20)
    return b"".join(squeeze.compress(zeros) for _ in range(inflated_mb)) + squeeze.flush()


async def gzip_bombs(target: Target) -> Counter[str]:
    bomb = await asyncio.to_thread(gzip_bomb, 1024)  # the prober's loop stays free
    kind = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    answers = await asyncio.gather(*(post(target, path, bomb, kind) for path in
                                     ("/no-such-route", "/no-such-route", "/intake/web",
                                      "/intake/web")))
    return Counter(answers)


async def trickle(target: Target, head: bytes, drip: bytes) -> str:
    """Send ``head``, then ``drip`` once a second until the server closes or time is up."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    answer = b""
    try:
        writer.write(head)
        deadline = time.monotonic() + target.seconds
        while time.monotonic() < deadline and not reader.at_eof():
            writer.write(drip)
            with contextlib.suppress(asyncio.TimeoutError):
                answer += await asyncio.wait_for(reader.read(4096), 1.0)
    except OSError as exc:
        return type(exc).__name__
    finally:
        writer.close()
    return answer.split(b" ", 2)[1].decode() if answer.count(b" ") >= 2 else "held"


async def slowloris(target: Target) -> Counter[str]:
    head = b"POST /intake/web HTTP/1.1\r\nHost: x\r\n"
    return Counter(await asyncio.gather(*(trickle(target, head, b"X") for _ in range(200))))


async def slow_body(target: Target) -> Counter[str]:
    head = (b"POST /intake/web HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{")
    return Counter(await asyncio.gather(*(trickle(target, head, b" ") for _ in range(50))))


async def idle_sockets(target: Target) -> Counter[str]:
    """1,100 connections that send nothing: beyond the usual ``ulimit -n 1024``."""
    async def idle() -> str:
        try:
            reader, writer = await asyncio.open_connection(target.host, target.port)
        except OSError as exc:
            return type(exc).__name__
        try:
            answer = await asyncio.wait_for(reader.read(4096), target.seconds)
            return answer.split(b" ", 2)[1].decode() if answer else "closed"
        except (TimeoutError, OSError):
            return "held"
        finally:
            writer.close()

    return Counter(await asyncio.gather(*(idle() for _ in range(1100))))


ATTACKS: dict[str, Attack] = {
    "form_40k_fields": form_40k_fields, "multipart_many_parts": multipart_many_parts,
    "deep_json": deep_json, "gzip_bombs": gzip_bombs, "slowloris": slowloris,
    "slow_body": slow_body, "idle_sockets": idle_sockets,
}


# -- measuring ---------------------------------------------------------------------------


async def probe(target: Target, stop_event: asyncio.Event) -> tuple[float, int, int]:
    """Fetch /healthz on a new connection every 50 ms: worst ms, failures, probes."""
    worst, failed, probes = 0.0, 0, 0
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=target.base, timeout=CLIENT_TIMEOUT_S,
                                 limits=limits) as client:
        while not stop_event.is_set():
            started = time.perf_counter()
            try:
                ok = (await client.get("/healthz")).status_code == 200
            except httpx.HTTPError:
                ok = False
            worst = max(worst, (time.perf_counter() - started) * 1000)
            failed, probes = failed + (not ok), probes + 1
            await asyncio.sleep(PROBE_EVERY_S)
    return worst, failed, probes


def loop_holds(log_path: Path, offset: int) -> tuple[float | None, int]:
    """The worst ``event_loop_held`` logged after ``offset``; None: no monitor logged."""
    with log_path.open("rb") as log:
        log.seek(offset)
        text = log.read()
    worst: float | None = None
    for line in text.splitlines():
        if b"event_loop_held" in line:
            with contextlib.suppress(ValueError):
                worst = max(worst or 0.0, float(json.loads(line).get("ms", 0)))
    return worst, offset + len(text)


async def run_attack(name: str, attack: Attack, target: Target, monitor: bool) -> Outcome:
    offset = target.log_path.stat().st_size
    stop_event = asyncio.Event()
    prober = asyncio.create_task(probe(target, stop_event))
    started = time.perf_counter()
    answers = await attack(target)
    seconds = time.perf_counter() - started
    await asyncio.sleep(0.5)  # the gateway's own cleanup after the attack counts too
    stop_event.set()
    worst, failed, probes = await prober
    hold, _ = loop_holds(target.log_path, offset)
    return Outcome(name, round(seconds, 2), round(worst, 1), failed, probes,
                   hold if hold is not None else (0.0 if monitor else None),
                   dict(sorted(answers.items())))


def has_loop_monitor(base: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return b"minsheng_event_loop_lag_seconds" in httpx.get(base + "/metrics").content
    return False


def print_table(outcomes: list[Outcome]) -> None:
    print(f"{'attack':<22}{'s':>7}{'healthz worst ms':>18}{'failed/probes':>15}"
          f"{'loop hold ms':>14}  answers")
    for o in outcomes:
        hold = "n/a" if o.loop_hold_worst_ms is None else (
            f"{o.loop_hold_worst_ms:.0f}" if o.loop_hold_worst_ms else "< threshold")
        print(f"{o.attack:<22}{o.seconds:>7.1f}{o.healthz_worst_ms:>18.1f}"
              f"{f'{o.healthz_failed}/{o.healthz_probes}':>15}{hold:>14}  {o.answers}")


async def attack_all(server: Server, names: list[str], seconds: float) -> list[Outcome]:
    base = server.url.rsplit("/intake/", 1)[0]
    host, port = base.removeprefix("http://").rsplit(":", 1)
    assert server.log_path is not None
    target = Target(base, host, int(port), server.log_path, seconds)
    monitor = has_loop_monitor(base)
    outcomes = []
    for name in names:
        outcomes.append(await run_attack(name, ATTACKS[name], target, monitor))
        await asyncio.sleep(1.0)  # let the gateway settle between attacks
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(ATTACKS), default=list(ATTACKS))
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="how long the slow and idle connections are held at most")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,100 idle sockets of ours
    with tempfile.TemporaryDirectory(prefix="minsheng-edge-") as tmp, \
            contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        (workdir / "var").mkdir()
        try:
            server = start_gateway(workdir, stack.enter_context(store_url("sqlite", workdir)),
                                   "sqlite")
        except RuntimeError as exc:
            print(f"could not start the gateway: {exc}", file=sys.stderr)
            return 2
        try:
            outcomes = asyncio.run(attack_all(server, args.only, args.seconds))
        finally:
            stop(server.proc)
    if args.json:
        print(json.dumps([asdict(o) for o in outcomes], ensure_ascii=False))
    else:
        print(f"gateway open-files soft limit of this shell: {soft} (hard {hard})")
        print_table(outcomes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
