"""config/nginx/minsheng.conf as it ships, run by Debian's nginx in front of a real
gateway: a submission passes, an oversized body is refused by nginx before the gateway
sees a byte of it, the inside routes are not reachable, and the web mailbox's rate limit
tells clients apart by X-Forwarded-For (a forged one does not help)."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adapters.web_mailbox import WebMailboxOptions
from gateway.server.app import Gateway
from tests import nginx
from tests.conftest import gateway_config
from tests.fixtures.cdr import scalar
from tests.procs import ROOT

EXAMPLE = ROOT / "config" / "nginx" / "minsheng.conf"
MIB = 1024 * 1024


@pytest.fixture
def nginx_binary() -> None:
    """nginx is in SYSTEM_PACKAGES: in CI its absence is a failure, elsewhere a skip."""
    if not nginx.available():
        if os.environ.get("CI"):
            pytest.fail(f"nginx not found at {nginx.NGINX} (make system-deps installs it)")
        pytest.skip("nginx is not installed (make system-deps)")


@pytest.fixture
async def proxied(tmp_path: Path, nginx_binary: None) -> AsyncIterator[tuple[Gateway, str]]:
    """A gateway on loopback whose web mailbox believes only 127.0.0.1 (nginx) as a
    proxy, and nginx in front of it; test clients connect from 127.0.0.2 and 127.0.0.3."""
    limits = {"per_minute": 0.01, "burst": 2, "trusted_proxies": ["127.0.0.1/32"],
              "exempt": ["127.0.0.1/32"]}
    gw = Gateway(gateway_config(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}",
                                sources=[{"name": "web", "adapter": "web_mailbox",
                                          "rate_limit": limits}]))
    await gw.start()
    server = nginx.NginxServer(tmp_path / "nginx", EXAMPLE.read_text("utf-8"),
                               gw.config.server.port)
    checked = server.check()
    assert checked.returncode == 0, checked.stderr
    server.start()
    try:
        yield gw, server.base_url
    finally:
        server.stop()
        await gw.stop()


def client_from(address: str, base: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=30)


def submission(n: int) -> dict[str, str]:
    return {"name": "王女士", "phone": "13800138000",
            "content": f"第{n}次反映：小区门口路灯已经坏了两周，晚上出行很不安全。"}


async def raw_count(gw: Gateway) -> int:
    return int(await scalar(gw, "SELECT COUNT(*) FROM raw_records"))


async def test_the_example_limits_match_the_gateway_defaults() -> None:
    """nginx never refuses what the web mailbox accepts, and refuses what it would not."""
    text = EXAMPLE.read_text("utf-8")
    size = re.search(r"^\s*client_max_body_size (\d+)m;", text, re.MULTILINE)
    assert size is not None
    assert int(size.group(1)) * MIB == WebMailboxOptions().max_body_kb * 1024
    assert f"the body exceeds {size.group(1)} MiB" in text
    for directive in ("client_header_timeout", "client_body_timeout", "keepalive_timeout",
                      "limit_conn ", "X-Forwarded-For $proxy_add_x_forwarded_for"):
        assert directive in text, directive


async def test_a_submission_passes_and_an_oversized_body_stops_at_nginx(
    proxied: tuple[Gateway, str],
) -> None:
    gw, base = proxied
    async with client_from("127.0.0.3", base) as client:
        answer = await client.post("/intake/web", json=submission(0))
        assert answer.status_code == 202, answer.text
        assert answer.json()["case_code"].startswith("CY-")
        assert len(answer.headers["X-Request-Id"]) == 32  # nginx's $request_id, echoed
        assert (await client.get("/healthz")).json() == {"status": "alive"}
        page = await client.get("/")  # the citizen page is public, its files too
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert (await client.get("/intake/web/static/page.css")).status_code == 200
        for inside in ("/v1/cases", "/v1/status", "/metrics", "/ops", "/readyz"):
            refused = await client.get(inside, headers={"Authorization": "Bearer x"})
            assert refused.status_code == 404, inside
            assert refused.headers["Content-Type"].startswith("application/problem+json")
    head = ("POST /intake/web HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Content-Length: {30 * MIB + 1}\r\n\r\n").encode()
    status, headers, body = await _head_only(base, head)
    assert status == 413
    assert "application/problem+json" in headers
    assert "请求体过大 (request body too large)" in body
    assert await raw_count(gw) == 1  # the gateway saw the submission, not the oversized one


async def _head_only(base: str, head: bytes) -> tuple[int, str, str]:
    """Send only a request head (the declared body never comes): nginx answers at once."""
    port = int(base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)  # a safety net, not an assertion
    finally:
        writer.close()
    text = data.decode("utf-8", "replace")
    headers, _, body = text.partition("\r\n\r\n")
    return int(headers.split(" ", 2)[1]), headers, body


async def test_the_rate_limit_sees_the_client_behind_nginx(proxied: tuple[Gateway, str]) -> None:
    gw, base = proxied
    async with client_from("127.0.0.2", base) as flood, client_from("127.0.0.3", base) as other:
        first = [(await flood.post("/intake/web", json=submission(n))).status_code
                 for n in (1, 2)]
        forged = await flood.post("/intake/web", json=submission(3),
                                  headers={"X-Forwarded-For": "203.0.113.9"})
        neighbour = await other.post("/intake/web", json=submission(4))
    assert first == [202, 202]
    assert forged.status_code == 429  # 127.0.0.2's bucket is empty, whatever it claims
    assert int(forged.headers["Retry-After"]) > 0
    assert neighbour.status_code == 202  # another client behind the same proxy
    assert gw.adapters["web"].refusals["rate_limited"] == 1
