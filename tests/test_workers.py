"""``server.workers: 2``: a worker group as real processes on both engines.

Two workers answer on one port and both take requests (the ``X-Minsheng-Worker``
header); every case gets its own code; the forwarder runs once (each case reaches the
JSON-lines sink exactly once); dedup sees the other worker's cases. Then the crash test
of tests/test_crash.py with workers: SIGKILL one worker under load (the secondary, then
the primary, which forwards), then the whole group; restarted, nothing answered 2xx is
lost, nothing is stored twice, no code is reused, and everything reaches the sink.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.model.casecode import format_code
from gateway.server.worker_role import WORKER_HEADER
from tests.procs import GatewayProcess
from tests.test_crash import (
    CLIENTS,
    Tally,
    check_store,
    crash_config,
    crash_rig,
    resubmit,
    sender,
    sink_codes,
    stored_cases,
    submission,
    wait_for_sink,
)
from tests.test_crash import Crash as CrashRig
from tests.test_lookup import page_form
from tests.test_metrics import parse, value

pytestmark = pytest.mark.slow

WORKERS = 2
LIMITED_BURST = 4


class GroupProcess(GatewayProcess):
    """The gateway in a session of its own, so the whole group can be killed at once."""

    new_session = True

    def kill(self) -> None:
        """SIGKILL to the parent and every worker at once (a power cut, an OOM kill)."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self._reap(10.0)

    def worker_pid(self, index: int) -> int:
        """The pid of worker ``index`` as its latest ``gateway_started`` line says."""
        pid = None
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == "gateway_started" and event.get("worker") == index:
                    pid = int(event["pid"])
        assert pid is not None, self.log_tail()
        return pid

    def wait_workers(self) -> None:
        """Until every worker of the latest start has started (after a restart too)."""
        for _ in range(1200):  # a bound, not a timing
            up: dict[int, bool] = {}
            for event in self.log_events():
                if event.get("event") == "workers_started":
                    up = {}
                elif event.get("event") == "gateway_started":
                    up[event["worker"]] = True
                elif event.get("event") == "worker_exited":
                    up[event["worker"]] = False
            if all(up.get(i) for i in range(WORKERS)):
                return
            assert self.alive, self.log_tail()
            time.sleep(0.05)
        raise AssertionError(f"workers never all started:\n{self.log_tail()}")

    def log_events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        events = [json.loads(line) for line in lines if line.startswith("{")]
        return [e for e in events if name is None or e.get("event") == name]


def group_config(tmp_path: Path, store_url: str, port: int) -> dict[str, Any]:
    raw = crash_config(tmp_path, store_url, port)
    raw["server"]["workers"] = WORKERS
    raw["log"]["level"] = "info"  # gateway_started names each worker's pid
    # the page test asks more often than the look-up's default limits allow
    raw["lookup"] = {"per_client": {"per_minute": 6000, "burst": 1000},
                     "per_code": {"per_minute": 6000, "burst": 1000}}
    # a public form whose limit the workers share (loopback not exempt, no refill to speak of)
    raw["sources"].append({"name": "limited", "adapter": "web_mailbox", "rate_limit": {
        "per_minute": 0.01, "burst": LIMITED_BURST, "exempt": []}})
    return raw


@pytest.fixture
async def group(tmp_path: Path, store_url: str) -> AsyncIterator[CrashRig]:
    async with crash_rig(tmp_path, store_url, group_config, GroupProcess) as rig:
        assert isinstance(rig.proc, GroupProcess)
        rig.proc.wait_workers()
        yield rig


def citizen(n: int) -> dict[str, str]:
    """A submission of its own reporter and matter: each becomes a new case."""
    words = random.Random(n)  # text unlike any other's: no related case re-forwards one
    text = "".join(chr(0x4E00 + words.randrange(20000)) for _ in range(40))
    return {"submission_id": f"w-{n}", "name": "王女士", "phone": f"139{n:08d}",
            "content": text}


async def test_two_workers_share_the_port_the_store_and_one_forwarder(group: CrashRig) -> None:
    workers: Counter[str] = Counter()
    codes: list[str] = []
    # A fresh connection per request: the kernel hands each to whichever worker accepts
    # first. Until both have answered (bounded by a count, not a time).
    async with httpx.AsyncClient(base_url=group.proc.base_url, timeout=30,
                                 limits=httpx.Limits(max_keepalive_connections=0)) as client:
        n = 0
        while (len(workers) < WORKERS or n < 20) and n < 2000:
            batch = [client.post("/intake/web", json=citizen(n + i)) for i in range(8)]
            for answer in await asyncio.gather(*batch):
                assert answer.status_code == 202, answer.text
                assert answer.json()["outcome"] == "new"
                workers[answer.headers[WORKER_HEADER]] += 1
                codes.append(answer.json()["case_code"])
            n += len(batch)
        assert set(workers) == {"0", "1"}, workers
        assert len(set(codes)) == len(codes)
        # On SQLite each worker's writer takes turns at the write lock (taking it costs
        # some time even when free), on PostgreSQL none
        scraped = parse((await client.get("/metrics")).text)
        waited = value(scraped, "minsheng_store_turn_wait_seconds_total")
        assert waited is not None and (waited > 0) == group.store_url.startswith("sqlite")
        # Dedup sees the other worker's cases: the same reporter and text again is a
        # replay, whichever worker takes it.
        for k in range(4):
            again = await client.post("/intake/web",
                                      json={**citizen(k), "submission_id": f"again-{k}"})
            assert (again.status_code, again.json()) == (
                200, {"outcome": "replay", "case_code": codes[k]}), again.text
    seen = await wait_for_sink(group.sink_path, set(codes))
    assert group.proc.terminate() == 0, group.proc.log_tail()
    in_sink = sink_codes(group.sink_path)
    assert in_sink == Counter(set(codes)), "a case forwarded twice, or not a case"
    assert set(seen) == set(codes)
    started = {e["worker"] for e in group.proc.log_events("gateway_started")}
    assert started == {0, 1}
    stopped = group.proc.log_events("gateway_stopped")
    delivered = {e["worker"]: e["delivered"] for e in stopped}
    assert delivered[1] == {}  # only the primary forwards
    assert delivered[0]["file"] == len(codes)


async def load_then(group: CrashRig, round_no: int, kill: Any) -> None:
    """Senders on fresh connections; ``kill()`` at a random moment once some are answered,
    then more answered afterwards (the group goes on serving) unless the whole group died."""
    stop = asyncio.Event()
    tally = group.tally
    before = len(tally.answered)
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=group.proc.base_url, timeout=30,
                                 limits=limits) as client:
        tasks = [asyncio.create_task(keep_sending(client, w, round_no, tally, stop))
                 for w in range(CLIENTS)]
        want = before + group.rng.randint(10, 60)
        while len(tally.answered) < want and not all(t.done() for t in tasks):
            await asyncio.sleep(0.01)
        await asyncio.sleep(group.rng.uniform(0, 0.25))
        whole_group = kill()
        if not whole_group:  # the other worker answers on, and the dead one comes back
            after = len(tally.answered) + 40
            while len(tally.answered) < after and not all(t.done() for t in tasks):
                await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    assert len(tally.answered) > before, "nothing was answered before the kill"


async def keep_sending(client: httpx.AsyncClient, worker: int, round_no: int, tally: Tally,
                       stop: asyncio.Event) -> None:
    """``tests.test_crash.sender`` again and again: a sender whose connection a killed
    worker cut starts over on a new one (the group still listens), until told to stop."""
    attempt = 0
    while not stop.is_set():
        cut_before = len(tally.unanswered)
        await sender(client, worker + 100 * attempt, round_no, tally, stop)
        attempt += 1
        if len(tally.unanswered) == cut_before:
            return  # stopped, not cut
        await asyncio.sleep(0.05)  # the kernel may still hand a connect to the dead one


async def test_sigkill_a_worker_then_the_group_loses_and_reuses_nothing(
    group: CrashRig,
) -> None:
    proc = group.proc
    assert isinstance(proc, GroupProcess)

    def kill_worker(index: int) -> Any:
        def kill() -> bool:
            os.kill(proc.worker_pid(index), signal.SIGKILL)
            return False
        return kill

    def kill_group() -> bool:
        proc.kill()
        return True

    for round_no, kill in enumerate((kill_worker(1), kill_worker(0), kill_group)):
        await load_then(group, round_no, kill)
        rows = await stored_cases(group.store_url)
        check_store(rows, group.tally)
        print(f"round {round_no}: {len(group.tally.answered)} answered, "
              f"{len(group.tally.unanswered)} unanswered")
        if not proc.alive:
            proc.start()
        await proc.wait_ready()
        proc.wait_workers()
        await wait_for_sink(group.sink_path, set(group.tally.answered.values()))
        await resubmit(group, dict(rows))
    restarted = proc.log_events("worker_restarted")
    assert {e["worker"] for e in restarted} == {0, 1}, proc.log_tail()
    await wait_for_sink(group.sink_path, set(group.tally.answered.values()))
    assert proc.terminate() == 0, proc.log_tail()

    rows = await stored_cases(group.store_url)
    check_store(rows, group.tally)
    assert {ref for ref, _ in rows} == set(group.tally.answered)
    in_sink = sink_codes(group.sink_path)
    assert set(in_sink) == {code for _, code in rows}
    print(f"{len(rows)} cases, {sum(in_sink.values())} sink lines")


async def test_a_page_one_worker_served_posts_to_the_other(group: CrashRig) -> None:
    """Citizen pages carry a CSRF token; with no secret configured, the key is drawn in the
    parent before the fork, so a form from one worker is not refused (403) by another."""
    unknown = format_code("CY", date(2019, 11, 20), "web", 7)
    async with httpx.AsyncClient(base_url=group.proc.base_url, timeout=30,
                                 limits=httpx.Limits(max_keepalive_connections=0)) as client:
        tokens: dict[str, str] = {}
        for _ in range(250):  # fresh connections until both workers served the page
            for page in await asyncio.gather(*[client.get("/lookup") for _ in range(8)]):
                assert page.status_code == 200
                tokens[page.headers[WORKER_HEADER]] = page_form(page.text)["csrf_token"]
            if len(tokens) == WORKERS:
                break
        assert set(tokens) == {"0", "1"}
        crossed: dict[str, int] = {}
        for _ in range(250):
            posts = [client.post("/lookup", data={"csrf_token": tokens[str(i % 2)],
                                                  "case_code": unknown, "phone_last4": "1234"})
                     for i in range(8)]
            for i, answer in enumerate(await asyncio.gather(*posts)):
                served = answer.headers[WORKER_HEADER]
                if served != str(i % 2):  # the form of one worker, answered by the other
                    crossed[served] = answer.status_code
            if len(crossed) == WORKERS:
                break
    # 404: the form was accepted and the code matched nothing (403: a stale form)
    assert crossed == {"0": 404, "1": 404}


async def test_a_rate_limit_holds_for_the_whole_group(group: CrashRig) -> None:
    """One client, fresh connections spread over both workers: the burst is accepted once
    in all (buckets in each worker's memory would accept it once per worker), and both
    workers refuse after it."""
    accepted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=group.proc.base_url, timeout=30,
                                 limits=httpx.Limits(max_keepalive_connections=0)) as client:
        n = 0
        while len(refused) < WORKERS and n < 2000:  # a bound, not a timing
            posts = [client.post("/intake/limited", json=citizen(100_000 + n + i))
                     for i in range(8)]
            for answer in await asyncio.gather(*posts):
                tally = accepted if answer.status_code == 202 else refused
                assert answer.status_code in (202, 429), answer.text
                tally[answer.headers[WORKER_HEADER]] += 1
            n += len(posts)
    assert set(refused) == {"0", "1"}, refused
    assert sum(accepted.values()) == LIMITED_BURST, accepted


async def test_a_worker_whose_parent_died_stops(group: CrashRig) -> None:
    """SIGKILL to the parent alone: the workers read the life pipe's end and stop."""
    proc = group.proc
    assert isinstance(proc, GroupProcess) and proc.proc is not None
    pids = [proc.worker_pid(i) for i in range(WORKERS)]
    answer = httpx.post(f"{proc.base_url}/intake/web", json=submission("orphan-1"), timeout=30)
    assert answer.status_code == 202
    proc.proc.send_signal(signal.SIGKILL)
    proc._reap(10.0)
    for pid in pids:  # gone, or a zombie nobody reaped yet; a bound, not a timing
        for _ in range(600):
            if _state(pid) in ("Z", "gone"):
                break
            time.sleep(0.05)
    assert all(_state(pid) in ("Z", "gone") for pid in pids), proc.log_tail()
    stopped = {e["worker"] for e in proc.log_events("gateway_stopped")}
    assert stopped == {0, 1}, proc.log_tail()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
