"""Crash recovery of the phone channel: a gateway process killed with SIGKILL in the
middle of a stream of concurrent CDR posts, restarted, on both engines.

After every kill: each call answered 2xx is in the store (its call row, and its case with
the code it was given, exactly once); a call answered without a case is still waiting
there; sent again, an unanswered call is a replay of what was stored, or is taken now;
every case reaches the sink.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
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

ROUNDS = 2
CLIENTS = 8


@dataclass
class Tally:
    answered: dict[str, str | None] = field(default_factory=dict)  # call id -> case code
    unanswered: set[str] = field(default_factory=set)


def cdr(call_id: str) -> dict[str, Any]:
    """A finished call: with notes (a case), missed (a callback case) or without notes."""
    kind = int(call_id.rsplit("-", 1)[1]) % 3
    record: dict[str, Any] = {
        "call_id": call_id, "caller": "13905321234", "callee": "12345",
        "started_at": "2024-05-06T10:00:00+08:00", "ended_at": "2024-05-06T10:04:00+08:00",
    }
    if kind != 2:
        record["answered_at"] = "2024-05-06T10:00:09+08:00"
    if kind == 0:
        record["notes"] = {"subject": "路面塌陷", "content": f"路面塌陷，存在安全隐患。{call_id}"}
    return record


def config(tmp_path: Path, store_url: str, port: int) -> dict[str, Any]:
    return {
        "region_code": "CY", "data_dir": str(tmp_path / "var"),
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_timeout_s": 5},
        "store": {"url": store_url}, "privacy": TEST_PRIVACY,
        "log": {"format": "json", "level": "warning"},
        "sources": [{"name": "hotline", "adapter": "cdr_webhook", "format": "generic_json",
                     "auth": {"scheme": "bearer", "token": "${PHONE_TOKEN}"},
                     "missed_calls": "callback"}],
        "sinks": [{"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl"),
                   "poll_interval_s": 0.1, "lease_s": 2}],
    }


ENV = {"PHONE_TOKEN": "phone-token-crash"}
HEADERS = {"Authorization": "Bearer phone-token-crash"}


async def sender(client: httpx.AsyncClient, worker: int, round_no: int, tally: Tally,
                 stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        call_id = f"crash-r{round_no}-w{worker}-{n}"
        n += 1
        try:
            answer = await client.post("/intake/hotline", json=cdr(call_id), headers=HEADERS)
        except httpx.HTTPError:
            tally.unanswered.add(call_id)
            return
        if answer.status_code in (200, 202):
            tally.answered[call_id] = answer.json().get("case_code")
        else:
            tally.unanswered.add(call_id)


async def stream_then_kill(proc: GatewayProcess, tally: Tally, round_no: int,
                           rng: random.Random) -> None:
    stop = asyncio.Event()
    before = len(tally.answered)
    async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as client:
        tasks = [asyncio.create_task(sender(client, w, round_no, tally, stop))
                 for w in range(CLIENTS)]
        want, deadline = before + rng.randint(10, 40), time.monotonic() + 20
        while len(tally.answered) < want and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(rng.uniform(0, 0.2))
        proc.kill()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    assert len(tally.answered) > before, "nothing was answered before the kill"


async def stored(store_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """(call id -> case code, call id -> call status), straight from the store."""
    store = Store.from_url(store_url)
    await store.start()
    try:
        case_rows = await store.read(lambda tx: tx.fetchall(
            "SELECT source_ref, case_code FROM cases WHERE source = 'hotline'"))
        call_rows = await store.read(lambda tx: tx.fetchall(
            "SELECT call_id, status FROM calls WHERE source = 'hotline'"))
    finally:
        await store.close()
    per_call = Counter(str(r[0]) for r in case_rows)
    assert not [c for c, n in per_call.items() if n > 1], "a call filed twice"
    return {str(r[0]): str(r[1]) for r in case_rows}, {str(r[0]): str(r[1]) for r in call_rows}


def check(tally: Tally, filed: dict[str, str], calls: dict[str, str]) -> None:
    lost = {c for c in tally.answered if c not in calls}
    assert not lost, f"answered 2xx but no call row: {sorted(lost)[:5]}"
    wrong = {c: code for c, code in tally.answered.items() if filed.get(c) != code}
    assert not wrong, f"answered with a case code that is not the stored one: {wrong}"


def sink_codes(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["case_code"] for line in path.read_text().splitlines() if line}


async def wait_for_sink(path: Path, codes: set[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while missing := codes - sink_codes(path):
        assert time.monotonic() < deadline, f"{len(missing)} cases never reached the sink"
        await asyncio.sleep(0.1)


async def resubmit(proc: GatewayProcess, tally: Tally, filed: dict[str, str],
                   calls: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as client:
        for call_id in sorted(tally.unanswered):
            answer = await client.post("/intake/hotline", json=cdr(call_id), headers=HEADERS)
            body = answer.json()
            if call_id in calls:
                assert (answer.status_code, body["outcome"]) == (200, "replay"), body
                assert body.get("case_code") == filed.get(call_id)
            else:
                assert answer.status_code == 202 and body["outcome"] in ("new", "recorded"), body
            tally.answered[call_id] = body.get("case_code")
    tally.unanswered.clear()


async def test_sigkill_during_a_cdr_stream_loses_nothing_answered(tmp_path: Path,
                                                                  store_url: str) -> None:
    port = free_port()
    path = write_config(tmp_path / "gateway.yaml", config(tmp_path, store_url, port))
    proc = GatewayProcess(path, tmp_path / "gateway.log", f"http://127.0.0.1:{port}", ENV)
    seed = random.randrange(2**32)
    print(f"phone crash test seed {seed}")
    rng, tally = random.Random(seed), Tally()
    proc.start()
    try:
        await proc.wait_ready()
        for round_no in range(ROUNDS):
            await stream_then_kill(proc, tally, round_no, rng)
            filed, calls = await stored(store_url)
            check(tally, filed, calls)
            proc.start()
            await proc.wait_ready()
            await resubmit(proc, tally, filed, calls)
        filed, calls = await stored(store_url)
        check(tally, filed, calls)
        assert set(calls) == set(tally.answered)
        await wait_for_sink(tmp_path / "cases.jsonl", set(filed.values()))
        assert proc.terminate() == 0, proc.log_tail()
    finally:
        if proc.alive:
            proc.kill()
    assert sink_codes(tmp_path / "cases.jsonl") == set(filed.values())
    print(f"{len(calls)} calls, {len(filed)} cases")
