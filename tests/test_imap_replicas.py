"""Two gateway processes on one PostgreSQL store and one mailbox: exactly one polls it
(the other stands by and opens no IMAP connection); when the polling one is killed, the
other takes over within a minute, and no mail becomes two cases."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests import dovecot
from tests.conftest import replica_config
from tests.dovecot import Dovecot, Mailbox
from tests.pg import create_database, free_port
from tests.procs import GatewayProcess, write_config
from tests.test_imap_intake import citizen_mail

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dovecot.available(),
                       reason="dovecot-imapd is not installed (make test installs it)"),
]
TAKEOVER_S = 60.0  # the promise: another replica polls within a minute


def mail_source(server: Dovecot, user: str) -> dict[str, Any]:
    return {
        "name": "mail", "adapter": "imap_email", "host": "127.0.0.1",
        "port": server.imaps_port, "ca_file": str(server.ca_file), "username": user,
        "password": "${IMAP_PASSWORD}", "idle": True, "poll_interval_s": 1,
        "lease_s": 3, "max_backoff_s": 2, "post_action": "seen",
    }


@pytest.fixture
async def setup(tmp_path: Path, pg_admin_url: str, dovecot_server: Dovecot
                ) -> AsyncIterator[tuple[Dovecot, str, str, list[GatewayProcess]]]:
    user = dovecot_server.add_user()
    url = create_database(pg_admin_url, f"imap_replicas_{os.getpid()}")
    procs = []
    for name in ("a", "b"):
        port = free_port()
        config = write_config(tmp_path / f"{name}.yaml",
                              replica_config(tmp_path, name, url, port,
                                             sources=[mail_source(dovecot_server, user)]))
        procs.append(GatewayProcess(config, tmp_path / f"{name}.log",
                                    f"http://127.0.0.1:{port}",
                                    env={"IMAP_PASSWORD": dovecot_server.password}))
    try:
        yield dovecot_server, user, url, procs
    finally:
        for proc in procs:
            if proc.alive:
                proc.terminate()


async def mail_state(proc: GatewayProcess) -> str:
    async with httpx.AsyncClient(base_url=proc.base_url, timeout=5) as client:
        return str((await client.get("/readyz")).json()["sources"]["mail"]["state"])


def counts(url: str) -> tuple[int, int, int]:
    """Cases, source references with more than one case, journal rows."""
    with psycopg.connect(url) as conn:
        cases = conn.execute("SELECT COUNT(*) FROM cases").fetchone()
        doubled = conn.execute("SELECT COUNT(*) FROM (SELECT source_ref FROM cases GROUP BY "
                               "source_ref HAVING COUNT(*) > 1) d").fetchone()
        journal = conn.execute("SELECT COUNT(*) FROM raw_records").fetchone()
    assert cases is not None and doubled is not None and journal is not None
    return int(cases[0]), int(doubled[0]), int(journal[0])


async def until(what: str, timeout: float, check: Any) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout:g} s: {what}")


async def test_one_replica_polls_and_the_other_takes_over(
    setup: tuple[Dovecot, str, str, list[GatewayProcess]],
) -> None:
    server, user, url, (a, b) = setup
    a.start()
    await a.wait_ready()
    await until("replica a polling", 30, lambda: _is(a, "up"))
    b.start()
    await b.wait_ready()
    await until("replica b standing by", 30, lambda: _is(b, "standby"))

    async with Mailbox(server, user) as box:
        for n in range(1, 4):
            await box.append(citizen_mail(n))
    await until("3 cases", 30, lambda: _cases(url, 3))
    assert await mail_state(a) == "up" and await mail_state(b) == "standby"
    assert "imap_idle_started" in a.log_tail(200)
    assert "imap_" not in b.log_tail(200)  # the standby never talked to the server

    a.kill()  # no lease release: b must wait for it to expire
    async with Mailbox(server, user) as box:
        for n in range(4, 6):
            await box.append(citizen_mail(n))
    await until("replica b taking over", TAKEOVER_S, lambda: _cases(url, 5))
    assert await mail_state(b) == "up"
    assert counts(url) == (5, 0, 5)  # five cases, none doubled, each mail journaled once
    async with Mailbox(server, user) as box:
        seen = await box.flags()
    assert len(seen) == 5 and all("\\Seen" in flags for flags in seen.values())


async def _is(proc: GatewayProcess, state: str) -> bool:
    return await mail_state(proc) == state


async def _cases(url: str, expected: int) -> bool:
    return counts(url)[0] == expected
