"""Shared fixtures: a real PostgreSQL on loopback, a store URL per engine, a real gateway
started in-process on a free port, and the local servers other channels poll: a web
server for the opinion sites and a Dovecot for IMAP."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.server.app import Gateway
from gateway.store import Store
from gateway.support.config import GatewayConfig, parse_config
from tests.dovecot import Dovecot
from tests.opinion_server import FixtureServer
from tests.pg import PostgresServer, create_database, free_port

_db_counter = itertools.count()
# Replicas sharing a PostgreSQL store must share the identifier key (a config without
# one is refused there): every test config carries this one.
TEST_PRIVACY: dict[str, Any] = {"identifier_key": "5a17" * 16}


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL server for this test session (started here unless given)."""
    given = os.environ.get("MINSHENG_TEST_PG_URL")
    if given:
        yield given
        return
    server = PostgresServer()
    server.start()
    try:
        yield server.url()
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store on each engine: every test using it runs on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    admin = request.getfixturevalue("pg_admin_url")
    return create_database(admin, f"test_{os.getpid()}_{next(_db_counter)}")


@asynccontextmanager
async def started_store(url: str) -> AsyncIterator[Store]:
    """A started store on ``url``; a second one on the same database is what another
    gateway replica would open."""
    s = Store.from_url(url)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with started_store(store_url) as s:
        yield s


def raw_config(tmp_path: Path, store_url: str, **overrides: Any) -> dict[str, Any]:
    """The raw (unparsed) config like the shipped default, on a free port, under
    ``tmp_path``; ``overrides`` replace whole top-level keys."""
    raw: dict[str, Any] = {
        "region_code": "CY",
        "data_dir": str(tmp_path / "var"),
        "server": {"listen": f"127.0.0.1:{free_port()}", "shutdown_timeout_s": 5},
        "store": {"url": store_url},
        "privacy": TEST_PRIVACY,
        "api": {"token": "test-api-token"},
        "log": {"format": "json", "level": "info"},
        "sources": [{"name": "web", "adapter": "web_mailbox"}],
        "sinks": [{"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl"),
                   "poll_interval_s": 0.2}],
    }
    raw.update(overrides)
    return raw


def gateway_config(tmp_path: Path, store_url: str, **overrides: Any) -> GatewayConfig:
    """A config like the shipped default, on a free port, under ``tmp_path``."""
    return parse_config(raw_config(tmp_path, store_url, **overrides))


def replica_config(tmp_path: Path, name: str, store_url: str, port: int,
                   **overrides: Any) -> dict[str, Any]:
    """The raw config of replica ``name``, a gateway process of its own on ``port``: its
    own data dir and sink file under ``tmp_path``, the API token from the environment."""
    raw = raw_config(
        tmp_path, store_url, data_dir=str(tmp_path / name),
        api={"token": "${MINSHENG_API_TOKEN}"},
        sinks=[{"name": "file", "kind": "jsonl", "path": str(tmp_path / f"{name}.jsonl")}],
        **overrides,
    )
    raw["server"]["listen"] = f"127.0.0.1:{port}"
    return raw


@pytest.fixture
async def gateway(tmp_path: Path, store_url: str) -> AsyncIterator[Gateway]:
    """A gateway running in this process on the default-like config."""
    gw = Gateway(gateway_config(tmp_path, store_url))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def base_url(gw: Gateway) -> str:
    return f"http://{gw.config.server.listen}"


@pytest.fixture
async def site_server() -> AsyncIterator[FixtureServer]:
    """A local web server for the opinion-channel tests, with no routes yet."""
    s = await FixtureServer().start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture(scope="module")
def dovecot_server() -> Iterator[Dovecot]:
    """A Dovecot for the tests of one module: each module that uses it starts its own."""
    instance = Dovecot()
    instance.start()
    try:
        yield instance
    finally:
        instance.close()


async def sink_lines(path: Path, want: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The sink's lines once there are ``want`` (or whatever is there after ``timeout``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = path.read_text().splitlines() if path.exists() else []
        if len(found) >= want or asyncio.get_running_loop().time() > deadline:
            return [json.loads(line) for line in found]
        await asyncio.sleep(0.05)
