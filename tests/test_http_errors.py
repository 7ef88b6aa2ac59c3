"""aiohttp's own errors and a handler's unexpected exception, answered problem+json.

The app here is a small real aiohttp app on loopback with the gateway's edge middleware
and protocol; its handlers are faulty on purpose (one raises, one reads past
``client_max_size``) because no gateway route is known to fail that way, and every such
failure must still be answered, counted and logged without personal data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.ops.edge_metrics import EdgeMetrics
from gateway.server.http_edge import EdgeLimits, EdgeSite, EdgeState, handler_args, watch_requests
from gateway.server.http_errors import make_edge_errors
from gateway.server.loop_lag import LoopLagMonitor
from gateway.support.config import ServerConfig
from tests.pg import free_port


async def faulty(request: web.Request) -> web.Response:
    raise RuntimeError("boom for 13800138000 at a@example.com")


async def reads_body(request: web.Request) -> web.Response:
    return web.Response(text=str(len(await request.read())))


@pytest.fixture
async def faulty_server() -> AsyncIterator[tuple[str, CollectorRegistry]]:
    metrics = EdgeMetrics(registry := CollectorRegistry())
    app = web.Application(middlewares=[watch_requests, make_edge_errors(metrics)],
                          client_max_size=1000)
    app.add_routes([web.get("/faulty", faulty), web.post("/read", reads_body)])
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    limits = EdgeLimits.from_config(ServerConfig(listen=f"127.0.0.1:{port}"), 1 << 16)
    await EdgeSite(runner, "127.0.0.1", port, EdgeState(limits, metrics),
                   **handler_args(limits)).start()
    try:
        yield f"http://127.0.0.1:{port}", registry
    finally:
        await runner.cleanup()


async def test_an_unexpected_exception_is_a_counted_masked_500(
        faulty_server: tuple[str, CollectorRegistry], capsys: pytest.CaptureFixture[str]) -> None:
    url, registry = faulty_server
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.get("/faulty")
    assert answer.status_code == 500
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert registry.get_sample_value(
        "minsheng_http_unexpected_errors_total", {"route": "/faulty"}) == 1
    out = capsys.readouterr().out
    assert "unexpected_error" in out and "RuntimeError" in out
    assert "13800138000" not in out and "a@example.com" not in out


async def test_a_body_over_client_max_size_is_a_problem_413(
        faulty_server: tuple[str, CollectorRegistry]) -> None:
    url, _ = faulty_server
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.post("/read", content=b"x" * 5000)
        fine = await client.post("/read", content=b"x" * 500)
    assert answer.status_code == 413
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert "1000" in answer.json()["detail"]
    assert fine.text == "500"


async def test_the_loop_monitor_sees_a_hold(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    monitor = LoopLagMonitor(metrics.loop_lag, warn_after_s=0.1, interval_s=0.01)
    monitor.start()
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # holds the event loop, as a parser on the loop would
    await asyncio.sleep(0.05)
    await monitor.stop()
    assert monitor.worst_s > 0.1
    assert "event_loop_held" in capsys.readouterr().out


def test_max_connections_is_lowered_to_fit_the_open_files_limit() -> None:
    server = ServerConfig(max_connections=5000)
    assert EdgeLimits.from_config(server, 1024).max_connections == 1024 - 64
    assert EdgeLimits.from_config(server, 1 << 16).max_connections == 5000
