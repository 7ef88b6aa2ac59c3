"""The outbox → forwarder → ``http`` sink path against a real case platform (tests/receiver.py),
on both engines: outages and timeouts are ridden out, each case arrives once per
idempotency key, requests are signed, refusals and persistent failures are dead-lettered
(not before their time) and replayed from the CLI."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from gateway.delivery.sinks.http import HttpSink, classify_status, sign
from gateway.model.errors import PermanentSinkError, RetriableSinkError
from gateway.model.schema import Complaint
from gateway.server.app import Gateway
from gateway.store import Store, Tx, outbox
from gateway.store.outbox import DeadLetter, Delivery
from gateway.support.config import GatewayConfig, SinkConfig
from tests.conftest import TEST_PRIVACY, base_url, gateway_config
from tests.procs import run_cli, write_config
from tests.receiver import Receiver, verify_signature

SECRET = "test-sink-secret-7f3a"
SINK = "case-platform"
API_TOKEN = "test-api-token"  # what tests.conftest.gateway_config configures


def http_sink(url: str, **retry: Any) -> dict[str, Any]:
    """An ``http`` sink with short timeouts and delays, so failures are cheap to ride out."""
    policy = {"base_delay_s": 0.05, "max_delay_s": 0.5, "max_attempts": 50, **retry}
    return {
        "name": SINK, "kind": "http", "url": url, "secret": SECRET, "timeout_s": 0.5,
        "poll_interval_s": 0.1, "retry": policy,
    }


def submission(n: int, run: str) -> dict[str, str]:
    return {
        "submission_id": f"fwd-{run}-{n:03d}", "name": "黄女士", "phone": "13800138000",
        "subject": f"共享单车乱停放 {n}",
        "content": f"小区门口共享单车堆放严重，影响通行。（第{n}次）",
        "address": "城阳区正阳路",
    }


@asynccontextmanager
async def running(config: GatewayConfig) -> AsyncIterator[Gateway]:
    gw = Gateway(config)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(secret=SECRET)
    await r.start()
    try:
        yield r
    finally:
        await r.close()


async def submit(gw: Gateway, subs: list[dict[str, str]]) -> list[str]:
    """Post each submission to the web mailbox; return the case codes, in order."""
    codes = []
    async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
        for sub in subs:
            answer = await client.post("/intake/web", json=sub)
            assert answer.status_code == 202, answer.text
            codes.append(answer.json()["case_code"])
    return codes


async def dead_letters(gw: Gateway) -> list[DeadLetter]:
    return await gw.store.read(lambda tx: outbox.list_dead(tx))


async def wait_settled(gw: Gateway, delivered: int, dead: int = 0, timeout: float = 30) -> None:
    """Wait until the sink's outbox shows nothing pending and these counts."""
    deadline = time.monotonic() + timeout
    while True:
        stats = (await gw.store.read(lambda tx: outbox.stats(tx))).get(SINK, {})
        now = (stats.get("pending"), stats.get("delivered", 0), stats.get("dead", 0))
        if now == (0, delivered, dead):
            return
        assert time.monotonic() < deadline, f"outbox not settled: {stats}"
        await asyncio.sleep(0.05)


# -- outage, timeouts, recovery ---------------------------------------------------------


async def test_outage_and_timeouts_then_recovery_deliver_each_case_once(
    tmp_path: Path, store_url: str, receiver: Receiver
) -> None:
    receiver.script(
        ["500"] * 20 + ["hang"] * 6 + ["hang_accept"] * 4 + ["503"] * 10 + ["429"] * 3
    )
    config = gateway_config(tmp_path, store_url, sinks=[http_sink(receiver.url)])
    async with running(config) as gw:
        codes = await submit(gw, [submission(n, "outage") for n in range(30)])
        await receiver.wait_for(lambda: set(codes) <= receiver.accepted.keys())
        await wait_settled(gw, delivered=30)
        assert await dead_letters(gw) == []
        failed = gw.forwarder.failed[SINK]
    assert receiver.script_left == 0, "the outage script was not played out"
    assert failed > 0
    assert len(set(codes)) == 30
    assert sorted(receiver.accepted) == sorted(codes)  # each case once, as a distinct key
    assert {r.key for r in receiver.requests} == set(codes)
    assert not [r for r in receiver.requests if r.action == "bad_signature"]
    answered = receiver.answered_ok()
    for code in codes:
        lost = sum(r.action == "hang_accept" for r in receiver.requests_for(code))
        # Repeats of an accepted key only follow an answer the gateway never got.
        assert answered[code] - 1 <= lost, (code, [r.action for r in receiver.requests_for(code)])
    for code, body in receiver.accepted.items():
        assert body["case_code"] == code


# -- what a request looks like ------------------------------------------------------------


async def test_request_is_signed_keyed_and_carries_the_canonical_complaint(
    tmp_path: Path, store_url: str, receiver: Receiver
) -> None:
    config = gateway_config(tmp_path, store_url, sinks=[http_sink(receiver.url)])
    async with running(config) as gw:
        [code] = await submit(gw, [submission(1, "sig")])
        await receiver.wait_for(lambda: code in receiver.accepted)
        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            stored = await client.get(f"/v1/cases/{code}",
                                      headers={"Authorization": f"Bearer {API_TOKEN}"})
    [request] = receiver.requests
    assert request.key == code
    assert request.headers["Idempotency-Key"] == code
    assert request.headers["Content-Type"].startswith("application/json")
    header = request.headers["X-Minsheng-Signature"]
    stamp = int(header.split(",")[0].removeprefix("t="))
    assert header == sign(SECRET, stamp, request.body)
    assert verify_signature(SECRET, header, request.body)
    assert not verify_signature("another-secret", header, request.body)
    assert not verify_signature(SECRET, header, request.body + b" ")
    assert stored.status_code == 200
    # Changed with the status API (issue 14): GET adds `status_history` at the end of the
    # stored document; the document itself is still the delivered one, byte for byte.
    assert stored.content == request.body[:-1] + b',"status_history":[]}'
    complaint = Complaint.model_validate_json(request.body)
    assert complaint.case_code == code
    assert complaint.schema_version == 1
    assert (complaint.channel, complaint.source, complaint.source_ref) == (
        "web", "web", "fwd-sig-001")
    assert complaint.reporter.phone == "+8613800138000"
    assert complaint.subject == "共享单车乱停放 1"


# -- refusals and dead letters ------------------------------------------------------------


async def test_refused_cases_are_dead_lettered_at_once_and_replayed_live(
    tmp_path: Path, store_url: str, receiver: Receiver
) -> None:
    subs = [submission(n, "refuse") for n in range(3)]
    receiver.refuse([subs[0]["submission_id"]], 422)
    receiver.refuse([subs[1]["submission_id"]], 400)
    config = gateway_config(tmp_path, store_url, sinks=[http_sink(receiver.url)])
    async with running(config) as gw:
        codes = await submit(gw, subs)
        await wait_settled(gw, delivered=1, dead=2)
        dead = {d.case_code: d for d in await dead_letters(gw)}
        assert sorted(dead) == sorted(codes[:2])
        for code, status in ((codes[0], 422), (codes[1], 400)):
            assert dead[code].attempts == 1
            assert dead[code].sink == SINK
            assert (dead[code].last_error or "").startswith(f"HTTP {status}")
            assert [r.status for r in receiver.requests_for(code)] == [status]  # no retry
        assert list(receiver.accepted) == [codes[2]]

        receiver.clear_refusals()  # the platform fixed its side; replay while running
        replayed = await gw.store.write(lambda tx: outbox.replay_dead(tx, None))
        assert replayed == 2
        await receiver.wait_for(lambda: set(codes) <= receiver.accepted.keys())
        await wait_settled(gw, delivered=3)
        assert await dead_letters(gw) == []


async def test_wrong_signature_secret_is_a_permanent_refusal(
    tmp_path: Path, store_url: str
) -> None:
    strict = Receiver(secret="the-platform-expects-this")
    await strict.start()
    try:
        config = gateway_config(tmp_path, store_url, sinks=[http_sink(strict.url)])
        async with running(config) as gw:
            [code] = await submit(gw, [submission(1, "badsig")])
            await wait_settled(gw, delivered=0, dead=1)
            [dead] = await dead_letters(gw)
    finally:
        await strict.close()
    assert (dead.case_code, dead.attempts) == (code, 1)
    assert (dead.last_error or "").startswith("HTTP 401")
    assert strict.accepted == {}


async def test_persistent_failure_dead_letters_after_max_attempts_then_cli_replay(
    tmp_path: Path, store_url: str, receiver: Receiver
) -> None:
    max_attempts, immediate = 3, 2
    sink = http_sink(receiver.url, max_attempts=max_attempts, immediate_attempts=immediate)
    receiver.fail_always(500)
    config = gateway_config(tmp_path, store_url, sinks=[sink])
    async with running(config) as gw:
        codes = await submit(gw, [submission(n, "down") for n in range(2)])
        await _watch_until_dead(gw, receiver, codes, max_attempts, immediate)
        dead = {d.case_code: d for d in await dead_letters(gw)}
    for code in codes:
        assert dead[code].attempts == max_attempts
        assert (dead[code].last_error or "").startswith("HTTP 500")
        assert len(receiver.requests_for(code)) == max_attempts * immediate
    assert receiver.accepted == {}

    # Operations, with the gateway stopped, look at the dead letters and replay them.
    cli_config = _cli_config(tmp_path, store_url, receiver.url)
    env = {"MINSHENG_TEST_SINK_SECRET": SECRET}
    listed = run_cli("dlq", "list", "--config", str(cli_config), env=env)
    assert listed.returncode == 0, listed.stderr
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert sorted(f[3] for f in lines) == sorted(codes)
    assert all(f[1] == SINK and f[4] == f"attempts={max_attempts}" for f in lines)
    assert all(f[5].startswith("HTTP 500") for f in lines)
    replayed = run_cli("dlq", "replay", "--all", "--config", str(cli_config), env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.startswith("2 dead letter(s) queued again")
    listed = run_cli("dlq", "list", "--config", str(cli_config), env=env)
    assert listed.stdout.strip() == "no dead letters"

    receiver.recover()
    async with running(config) as gw:
        await receiver.wait_for(lambda: set(codes) <= receiver.accepted.keys())
        await wait_settled(gw, delivered=2)
        assert await dead_letters(gw) == []
    assert sorted(receiver.accepted) == sorted(codes)


async def _watch_until_dead(gw: Gateway, receiver: Receiver, codes: list[str],
                            max_attempts: int, immediate: int) -> None:
    """Poll the outbox until every entry is dead, checking on the way that none died early:
    a dead entry has had all its attempts, a pending one has fewer."""
    deadline = time.monotonic() + 30
    while True:
        rows = await gw.store.read(lambda tx: tx.fetchall(
            "SELECT c.case_code, o.state, o.attempts FROM outbox o "
            "JOIN cases c ON c.id = o.case_id"))
        seen = {code: len(receiver.requests_for(code)) for code in codes}
        for code, state, attempts in rows:
            if state == outbox.DEAD:
                assert (attempts, seen[code]) == (max_attempts, max_attempts * immediate)
            else:
                assert state == outbox.PENDING and attempts < max_attempts
        if all(state == outbox.DEAD for _, state, _ in rows) and len(rows) == len(codes):
            return
        assert time.monotonic() < deadline, f"not dead-lettered in time: {rows}"
        await asyncio.sleep(0.02)


def _cli_config(tmp_path: Path, store_url: str, url: str) -> Path:
    """A YAML config for the CLI on the same store; the secret comes from the environment."""
    sink = {**http_sink(url), "secret": "${MINSHENG_TEST_SINK_SECRET}"}
    raw = {"data_dir": str(tmp_path / "var"), "store": {"url": store_url},
           "privacy": TEST_PRIVACY, "sinks": [sink]}
    return write_config(tmp_path / "cli.yaml", raw)


# -- retention of delivered entries ------------------------------------------------------

DAY = 86400.0


async def _old_outbox(store_url: str) -> list[int]:
    """Entries of a sink no longer configured (``gone``), by id: delivered 8 days ago,
    delivered 6 days ago, dead for 30 days, delivered 8 days ago, pending for 30 days."""
    store = Store.from_url(store_url)
    await store.start()
    now = time.time()

    def fill(tx: Tx) -> list[int]:
        for _ in range(5):
            outbox.enqueue(tx, ["gone"], None, kind="event", payload='{"event": "x"}')
        ids = [d.outbox_id for d in outbox.claim(tx, "gone", 5, 30, "old-replica")]
        outbox.mark_delivered(tx, [ids[0], ids[1], ids[3]])
        outbox.dead_letter(tx, ids[2], "HTTP 400")
        outbox.release_leases(tx)
        for oid, age in ((ids[0], 8), (ids[1], 6), (ids[2], 30), (ids[3], 8)):
            tx.execute("UPDATE outbox SET finished_at = ? WHERE id = ?", (now - age * DAY, oid))
        tx.execute("UPDATE outbox SET created_at = ?", (now - 30 * DAY,))
        return ids

    try:
        return await store.write(fill)
    finally:
        await store.close()


async def _states(gw: Gateway) -> list[tuple[int, str]]:
    rows = await gw.store.read(lambda tx: tx.fetchall("SELECT id, state FROM outbox ORDER BY id"))
    return [(int(r[0]), str(r[1])) for r in rows]


async def test_the_running_gateway_deletes_deliveries_past_the_retention(
    tmp_path: Path, store_url: str
) -> None:
    ids = await _old_outbox(store_url)
    everything = [(ids[0], "delivered"), (ids[1], "delivered"), (ids[2], "dead"),
                  (ids[3], "delivered"), (ids[4], "pending")]
    forever = gateway_config(tmp_path, store_url,
                             store={"url": store_url, "outbox_retention_days": 0})
    async with running(forever) as gw:
        assert await gw.forwarder.purge_delivered() == {}
        assert await _states(gw) == everything

    config = gateway_config(tmp_path, store_url,
                            store={"url": store_url, "outbox_retention_days": 7})
    async with running(config) as gw:  # the first round runs at start
        deadline = time.monotonic() + 30
        while (states := await _states(gw)) == everything:
            assert time.monotonic() < deadline, "nothing deleted"
            await asyncio.sleep(0.05)
        assert states == [(ids[1], "delivered"), (ids[2], "dead"), (ids[4], "pending")]
        stats = await gw.store.read(outbox.stats)
        assert (stats["gone"]["delivered"], stats["gone"]["dead"]) == (3, 1)
        assert [d.outbox_id for d in await dead_letters(gw)] == [ids[2]]

    # The CLI, gateway stopped: the dead letter is listed, the status counts what was sent.
    cli_config = write_config(tmp_path / "cli.yaml", {
        "data_dir": str(tmp_path / "var"), "store": {"url": store_url},
        "privacy": TEST_PRIVACY, "server": {"listen": config.server.listen}})
    listed = run_cli("dlq", "list", "--config", str(cli_config))
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [
        [str(ids[2]), "gone"]]
    shown = run_cli("status", "--json", "--config", str(cli_config))
    assert shown.returncode == 1, shown.stderr  # 1: a dead letter needs attention
    [gone] = [s for s in json.loads(shown.stdout)["sinks"] if s["name"] == "gone"]
    assert (gone["delivered"], gone["dead"], gone["pending"]) == (3, 1, 1)


# -- the status table and the sink alone ------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299, 409])
def test_classify_delivered(status: int) -> None:
    assert classify_status(status, "x") is None


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_classify_retriable(status: int) -> None:
    outcome = classify_status(status, "busy")
    assert isinstance(outcome, RetriableSinkError)
    assert str(outcome).startswith(f"HTTP {status}")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 413, 415, 422, 451])
def test_classify_permanent(status: int) -> None:
    outcome = classify_status(status, "no")
    assert isinstance(outcome, PermanentSinkError)
    assert str(outcome).startswith(f"HTTP {status}")


def _sink(url: str, immediate: int) -> HttpSink:
    config = SinkConfig.model_validate({
        "name": SINK, "kind": "http", "url": url, "timeout_s": 0.5,
        "retry": {"immediate_attempts": immediate},
    })
    return HttpSink(config, config.options)


DELIVERY = Delivery(1, SINK, "case", "CY-20240101-W-000001-X", json.dumps({"a": 1}), 0,
                    time.time())


@respx.mock
async def test_http_sink_turns_timeouts_into_retriable_outcomes() -> None:
    url = f"http://platform.invalid/{uuid.uuid4().hex}"
    route = respx.post(url).mock(side_effect=httpx.ReadTimeout("slow"))
    sink = _sink(url, immediate=2)
    await sink.start()
    try:
        [outcome] = await sink.deliver([DELIVERY])
        assert isinstance(outcome, RetriableSinkError)
        assert "timeout" in str(outcome)
        assert route.call_count == 2  # the immediate attempts, then back to the outbox
        route.side_effect = [httpx.ConnectTimeout("no route"), httpx.Response(201)]
        assert await sink.deliver([DELIVERY]) == [None]
        assert route.call_count == 4
    finally:
        await sink.close()
