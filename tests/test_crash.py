"""Crash recovery: the gateway as a real process, killed with SIGKILL in the middle of a
stream of concurrent submissions, then restarted, several times, on both engines.

What must hold after every kill: a submission that was answered 2xx is in the store
exactly once with the code it was given, and reaches the sink (at least once); one that
got no answer may or may not be there, but never twice; sent again, it is a replay of
the stored case or a new one, never a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.store import Store
from tests.conftest import TEST_PRIVACY
from tests.pg import free_port
from tests.procs import GatewayProcess, write_config

pytestmark = pytest.mark.slow

ROUNDS = 4
CLIENTS = 16
SOURCE = "web"


@dataclass
class Tally:
    """What the senders know: which submissions were answered, with which case code."""

    answered: dict[str, str] = field(default_factory=dict)  # submission_id -> case_code
    unanswered: set[str] = field(default_factory=set)


@dataclass
class Crash:
    proc: GatewayProcess
    sink_path: Path
    store_url: str
    rng: random.Random
    tally: Tally = field(default_factory=Tally)


def crash_config(tmp_path: Path, store_url: str, port: int) -> dict[str, Any]:
    return {
        "region_code": "CY",
        "data_dir": str(tmp_path / "var"),
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_timeout_s": 5},
        "store": {"url": store_url},
        "privacy": TEST_PRIVACY,
        "api": {"token": "${MINSHENG_API_TOKEN}"},
        "log": {"format": "json", "level": "warning"},
        "sources": [{"name": SOURCE, "adapter": "web_mailbox"}],
        # lease_s: on PostgreSQL a killed replica's leases run out before others take over.
        "sinks": [{"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl"),
                   "poll_interval_s": 0.1, "lease_s": 2}],
    }


def submission(sid: str) -> dict[str, str]:
    return {
        "submission_id": sid, "name": "李先生", "phone": "0532-88776655",
        "subject": "夜间施工噪音扰民", "content": f"工地夜间施工噪音很大，影响休息。编号 {sid}",
        "address": "城阳区春阳路",
    }


@contextlib.asynccontextmanager
async def crash_rig(
    tmp_path: Path, store_url: str,
    config_of: Callable[[Path, str, int], dict[str, Any]] = crash_config,
    process: type[GatewayProcess] = GatewayProcess,
) -> AsyncIterator[Crash]:
    """A gateway process on ``config_of``'s config, started and ready, with a seeded
    random source (printed, to replay a failure); killed at the end if still alive."""
    port = free_port()
    config = write_config(tmp_path / "gateway.yaml", config_of(tmp_path, store_url, port))
    proc = process(config, tmp_path / "gateway.log", f"http://127.0.0.1:{port}")
    seed = random.randrange(2**32)
    print(f"crash test seed {seed}")
    proc.start()
    try:
        await proc.wait_ready()
        yield Crash(proc, tmp_path / "cases.jsonl", store_url, random.Random(seed))
    finally:
        if proc.alive:
            proc.kill()


@pytest.fixture
async def crash(tmp_path: Path, store_url: str) -> AsyncIterator[Crash]:
    async with crash_rig(tmp_path, store_url) as rig:
        yield rig


async def sender(client: httpx.AsyncClient, worker: int, round_no: int, tally: Tally,
                 stop: asyncio.Event) -> None:
    """Post unique submissions until told to stop or until the gateway goes away."""
    n = 0
    while not stop.is_set():
        sid = f"crash-r{round_no}-w{worker:02d}-{n:05d}"
        n += 1
        try:
            answer = await client.post("/intake/web", json=submission(sid))
        except httpx.HTTPError:
            tally.unanswered.add(sid)
            return
        if answer.status_code in (200, 202):
            tally.answered[sid] = answer.json()["case_code"]
        else:
            tally.unanswered.add(sid)


async def stream_then_kill(crash: Crash, round_no: int) -> None:
    """Run the senders; SIGKILL the gateway at a random moment once some are answered."""
    stop = asyncio.Event()
    before = len(crash.tally.answered)
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=crash.proc.base_url, timeout=30,
                                 limits=limits) as client:
        tasks = [asyncio.create_task(sender(client, w, round_no, crash.tally, stop))
                 for w in range(CLIENTS)]
        want = before + crash.rng.randint(10, 60)
        deadline = time.monotonic() + 20
        while len(crash.tally.answered) < want and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(crash.rng.uniform(0, 0.25))
        crash.proc.kill()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    assert len(crash.tally.answered) > before, "nothing was answered before the kill"


# PostgreSQL sessions of this database other than the asking one that are running a
# statement or inside a transaction.
BUSY_SESSIONS = (
    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle'"
)


async def settled(store: Store, timeout: float = 10.0) -> None:
    """Wait until no other session of the database is busy. A killed gateway may have
    sent a whole batch with its COMMIT (pipeline mode) before it died: the server runs it
    to the end, and it may commit after the kill. Only then is the store what the crash
    left (a session with nothing left to read is idle, then sees the closed socket)."""
    deadline = time.monotonic() + timeout
    while (await store.read(lambda tx: int(tx.fetchone(BUSY_SESSIONS)[0]))
           and time.monotonic() < deadline):
        await asyncio.sleep(0.02)


async def stored_cases(store_url: str) -> list[tuple[str, str]]:
    """(source_ref, case_code) of every web case, read straight from the store once the
    killed gateway's last batch has settled."""
    store = Store.from_url(store_url)
    await store.start()
    try:
        if store.engine == "postgresql":
            await settled(store)
        rows = await store.read(lambda tx: tx.fetchall(
            "SELECT source_ref, case_code FROM cases WHERE source = ?", (SOURCE,)))
    finally:
        await store.close()
    return [(str(r[0]), str(r[1])) for r in rows]


def check_store(rows: list[tuple[str, str]], tally: Tally) -> None:
    per_ref = Counter(ref for ref, _ in rows)
    twice = {ref: n for ref, n in per_ref.items() if n > 1}
    assert not twice, f"submissions stored more than once: {twice}"
    assert len({code for _, code in rows}) == len(rows)
    by_ref = dict(rows)
    lost = {sid: code for sid, code in tally.answered.items() if by_ref.get(sid) != code}
    assert not lost, f"answered 2xx but not in the store as answered: {lost}"


def sink_codes(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    lines = path.read_text(encoding="utf-8").splitlines()
    return Counter(json.loads(line)["case_code"] for line in lines if line)


async def wait_for_sink(path: Path, codes: set[str], timeout: float = 30) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        seen = sink_codes(path)
        missing = codes - seen.keys()
        if not missing:
            return seen
        assert time.monotonic() < deadline, f"{len(missing)} answered cases never reached " \
            f"the sink, e.g. {sorted(missing)[:5]}"
        await asyncio.sleep(0.1)


async def resubmit(crash: Crash, stored: dict[str, str]) -> None:
    """Send the unanswered ones again: each is a replay of its stored case, or new."""
    async with httpx.AsyncClient(base_url=crash.proc.base_url, timeout=30) as client:
        for sid in sorted(crash.tally.unanswered):
            answer = await client.post("/intake/web", json=submission(sid))
            body = answer.json()
            if sid in stored:
                assert (answer.status_code, body) == (
                    200, {"outcome": "replay", "case_code": stored[sid]}), sid
            else:
                # same reporter, similar text: a repeat of an earlier case is a new case too
                assert answer.status_code == 202, (sid, body)
                assert body["outcome"] in ("new", "repeat"), (sid, body)
            crash.tally.answered[sid] = body["case_code"]
    crash.tally.unanswered.clear()


async def test_sigkill_under_load_loses_and_duplicates_nothing(crash: Crash) -> None:
    for round_no in range(ROUNDS):
        await stream_then_kill(crash, round_no)
        rows = await stored_cases(crash.store_url)
        check_store(rows, crash.tally)
        stored_unanswered = crash.tally.unanswered & {ref for ref, _ in rows}
        print(f"round {round_no}: {len(crash.tally.answered)} answered, "
              f"{len(crash.tally.unanswered)} unanswered ({len(stored_unanswered)} stored)")
        crash.proc.start()
        await crash.proc.wait_ready()
        await wait_for_sink(crash.sink_path, set(crash.tally.answered.values()))
        await resubmit(crash, dict(rows))
    await wait_for_sink(crash.sink_path, set(crash.tally.answered.values()))
    assert crash.proc.terminate() == 0, crash.proc.log_tail()

    rows = await stored_cases(crash.store_url)
    check_store(rows, crash.tally)
    assert {ref for ref, _ in rows} == set(crash.tally.answered)  # nothing left unanswered
    in_sink = sink_codes(crash.sink_path)
    assert set(in_sink) == {code for _, code in rows}  # every case, and only cases, reached it
    print(f"{len(rows)} cases, {sum(in_sink.values())} sink lines")
