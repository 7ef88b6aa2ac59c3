"""Connection hygiene of the HTTP edge, over real loopback sockets: head timeout, body
minimum rate, keep-alive, the connection cap, protocol errors, compressed bodies.

Waits here are bounds (a generous ``wait_for``), never assertions on durations.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import resource
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.server.app import Gateway
from gateway.server.http_edge import raise_open_files_limit
from tests.conftest import base_url, gateway_config

BOUND_S = 20.0  # how long a test waits for the edge to act, at most (not a timing check)
FAST = {"head_timeout_s": 0.5, "body_min_rate": 1000, "body_rate_window_s": 0.5,
        "keepalive_timeout_s": 2.0}


async def started(tmp_path: Path, **server: Any) -> Gateway:
    config = gateway_config(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}")
    listen = config.server.listen
    config = gateway_config(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}",
                            server={"listen": listen, "shutdown_timeout_s": 2, **server})
    gw = Gateway(config)
    await gw.start()
    return gw


@pytest.fixture
async def edge_gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await started(tmp_path, **FAST)
    try:
        yield gw
    finally:
        await gw.stop()


async def connect(gw: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(gw.config.server.host, gw.config.server.port)


async def read_to_close(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), BOUND_S)


def status_and_body(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/problem+json" in head
    return int(head.split()[1]), json.loads(body)


def cut(gw: Gateway, reason: str) -> float:
    value = gw.metrics.registry.get_sample_value(
        "minsheng_http_connections_cut_total", {"reason": reason})
    return value or 0.0


def unexpected(gw: Gateway) -> float:
    """500s answered: each a defect (the edge's own counter)."""
    return sum(s.value for m in gw.metrics.registry.collect() for s in m.samples
               if s.name == "minsheng_http_unexpected_errors_total")


async def no_connection_open(gw: Gateway) -> None:
    while gw.metrics.registry.get_sample_value("minsheng_http_connections_open") != 0:
        await asyncio.sleep(0.05)


async def both_in_a_request(gw: Gateway) -> None:
    assert gw.site is not None
    while gw.site.state.open < 2 or gw.site.state.idle:
        await asyncio.sleep(0.02)


async def healthz(gw: Gateway) -> int:
    async with httpx.AsyncClient(base_url=base_url(gw), timeout=BOUND_S) as client:
        return (await client.get("/healthz")).status_code


async def test_an_idle_connection_is_answered_408_and_closed(edge_gateway: Gateway) -> None:
    reader, writer = await connect(edge_gateway)
    status, body = status_and_body(await read_to_close(reader))
    writer.close()
    assert status == 408
    assert "request head" in body["detail"]
    assert cut(edge_gateway, "head_timeout") == 1


async def test_a_slowloris_head_is_cut_while_healthz_answers(edge_gateway: Gateway) -> None:
    reader, writer = await connect(edge_gateway)
    writer.write(b"POST /intake/web HTTP/1.1\r\nHost: x\r\n")

    async def trickle() -> None:
        for _ in range(200):
            writer.write(b"X")
            await asyncio.sleep(0.1)

    trickling = asyncio.create_task(trickle())
    assert await healthz(edge_gateway) == 200
    answer = await read_to_close(reader)
    trickling.cancel()
    writer.close()
    assert status_and_body(answer)[0] == 408
    assert cut(edge_gateway, "head_timeout") >= 1


async def test_a_trickling_body_is_cut(edge_gateway: Gateway) -> None:
    reader, writer = await connect(edge_gateway)
    writer.write(b"POST /intake/web HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n{")

    async def trickle() -> None:
        for _ in range(200):
            writer.write(b" ")
            await asyncio.sleep(0.1)

    trickling = asyncio.create_task(trickle())
    assert await healthz(edge_gateway) == 200
    answer = await read_to_close(reader)
    trickling.cancel()
    writer.close()
    assert status_and_body(answer)[0] == 408
    assert cut(edge_gateway, "body_too_slow") == 1
    assert sum(edge_gateway.intake.counts.values()) == 0
    assert unexpected(edge_gateway) == 0


async def test_an_idle_keep_alive_connection_is_closed(edge_gateway: Gateway) -> None:
    reader, writer = await connect(edge_gateway)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await read_to_close(reader)  # the answer, then the close of the idle connection
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert cut(edge_gateway, "head_timeout") == 0


async def test_at_the_cap_idle_connections_make_room_and_healthz_answers(
        tmp_path: Path) -> None:
    gw = await started(tmp_path, max_connections=3, head_timeout_s=60)
    try:
        pairs = [await connect(gw) for _ in range(6)]
        evicted = await asyncio.gather(*(read_to_close(r) for r, _ in pairs[:3]))
        assert await healthz(gw) == 200  # while three idle connections are still held
        assert all(a.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in a for a in evicted)
        assert status_and_body(evicted[0])[0] == 503
        assert cut(gw, "evicted_idle") >= 3
        assert cut(gw, "over_capacity") == 0
        for _, writer in pairs:
            writer.close()
        await asyncio.wait_for(no_connection_open(gw), BOUND_S)  # the count does not leak
    finally:
        await gw.stop()


async def test_at_the_cap_of_busy_connections_a_new_one_gets_503(tmp_path: Path) -> None:
    gw = await started(tmp_path, max_connections=2, body_min_rate=0)
    try:
        busy = [await connect(gw) for _ in range(2)]
        for _, writer in busy:  # in a request: waiting for the rest of a body
            writer.write(b"POST /intake/web HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        await asyncio.wait_for(both_in_a_request(gw), BOUND_S)
        reader, writer = await connect(gw)
        refused = await read_to_close(reader)
        writer.close()
        assert status_and_body(refused)[0] == 503
        assert b"Retry-After: 1" in refused
        assert cut(gw, "over_capacity") == 1
        for _, busy_writer in busy:
            busy_writer.close()
        await asyncio.wait_for(no_connection_open(gw), BOUND_S)
        assert await healthz(gw) == 200
    finally:
        await gw.stop()


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header 13800138000\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 9000 + b"\r\n\r\n",
])
async def test_an_unparsable_request_gets_a_problem_400(edge_gateway: Gateway,
                                                       head: bytes) -> None:
    """aiohttp answers these itself; ``handle_error`` of its public RequestHandler is what
    the edge overrides (this test pins that hook)."""
    reader, writer = await connect(edge_gateway)
    writer.write(head)
    status, body = status_and_body(await read_to_close(reader))
    writer.close()
    assert status == 400
    assert "(" in body["title"] and body["detail"]
    assert "13800138000" not in json.dumps(body)


async def test_routes_and_methods_answer_problem_json(edge_gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(edge_gateway)) as client:
        missing = await client.post("/nowhere", content=b"x")
        wrong = await client.get("/intake/web")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")
    assert "no such route" in missing.json()["title"]
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"
    assert wrong.headers["Content-Type"].startswith("application/problem+json")
    assert "POST" in wrong.json()["detail"]


async def test_a_compressed_body_is_refused_415_unread(edge_gateway: Gateway) -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)
    async with httpx.AsyncClient(base_url=base_url(edge_gateway)) as client:
        for path in ("/intake/web", "/no-such-route"):
            answer = await client.post(path, content=bomb, headers={
                "Content-Encoding": "gzip", "Content-Type": "application/json"})
            assert answer.status_code == 415
            assert answer.json()["field"] == "Content-Encoding"
        plain = await client.post("/intake/web", headers={"Content-Encoding": "identity"},
                                  json={"name": "黄女士", "phone": "13800138000",
                                        "content": "路灯坏了"})
    assert plain.status_code in (200, 201, 202)
    assert sum(edge_gateway.intake.counts.values()) == 1


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    limit = raise_open_files_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limit == soft
    assert hard == resource.RLIM_INFINITY or soft == hard
