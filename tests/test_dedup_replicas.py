"""Two gateway processes on one PostgreSQL share one dedup index: each links the other's
cases (repeat of a case filed by the other replica, related cases in one cluster)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import replica_config
from tests.pg import create_database, free_port
from tests.procs import GatewayProcess, write_config
from tests.test_dedup_store import NOISE, NOISE_AGAIN


@pytest.fixture
def replicas(tmp_path: Path, pg_admin_url: str) -> Iterator[list[GatewayProcess]]:
    url = create_database(pg_admin_url, f"dedup_replicas_{os.getpid()}")
    procs = []
    for name in ("a", "b"):
        port = free_port()
        config = write_config(tmp_path / f"{name}.yaml",
                              replica_config(tmp_path, name, url, port,
                                             log={"format": "json", "level": "warning"}))
        procs.append(GatewayProcess(config, tmp_path / f"{name}.log",
                                    f"http://127.0.0.1:{port}"))
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            if proc.alive:
                proc.terminate()


def form(phone: str, content: str) -> dict[str, str]:
    return {"name": "居民", "phone": phone, "content": content, "address": "城阳区正阳路"}


async def test_two_gateway_processes_link_each_others_cases(
    replicas: list[GatewayProcess],
) -> None:
    a, b = replicas
    for proc in replicas:
        await proc.wait_ready()
    async with httpx.AsyncClient(timeout=30) as client:
        first = (await client.post(f"{a.base_url}/intake/web",
                                   json=form("13800138000", NOISE))).json()
        repeat = (await client.post(f"{b.base_url}/intake/web",
                                    json=form("13800138000", NOISE_AGAIN))).json()
        duplicate = (await client.post(f"{a.base_url}/intake/web",
                                       json=form("13800138000", NOISE_AGAIN))).json()
        neighbour = (await client.post(f"{b.base_url}/intake/web",
                                       json=form("13900139000", NOISE))).json()
        other = (await client.post(f"{a.base_url}/intake/web",
                                   json=form("13700137000", NOISE + "晚上根本睡不着"))).json()
    assert first["outcome"] == "new"
    assert (repeat["outcome"], repeat["repeat_of"]) == ("repeat", first["case_code"])
    assert duplicate == {"outcome": "replay", "case_code": repeat["case_code"]}
    assert neighbour["outcome"] == "related"
    assert (other["outcome"], other["cluster_id"]) == ("related", neighbour["cluster_id"])
