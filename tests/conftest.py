"""Shared fixtures: a real PostgreSQL on loopback, a store URL per engine, and a real
gateway started in-process on a free port."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import GatewayConfig, parse_config
from gateway.store import Store
from tests.pg import PostgresServer, create_database, free_port

_db_counter = itertools.count()


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


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = Store.from_url(store_url)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


def gateway_config(tmp_path: Path, store_url: str, **overrides: Any) -> GatewayConfig:
    """A config like the shipped default, on a free port, under ``tmp_path``."""
    raw: dict[str, Any] = {
        "region_code": "CY",
        "data_dir": str(tmp_path / "var"),
        "server": {"listen": f"127.0.0.1:{free_port()}", "shutdown_timeout_s": 5},
        "store": {"url": store_url},
        "api": {"token": "test-api-token"},
        "log": {"format": "json", "level": "info"},
        "sources": [{"name": "web", "adapter": "web_mailbox"}],
        "sinks": [{"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl"),
                   "poll_interval_s": 0.2}],
    }
    raw.update(overrides)
    return parse_config(raw)


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
