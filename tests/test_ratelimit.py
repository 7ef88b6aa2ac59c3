"""Per-client rate limits of the web mailbox: buckets, who the client is, the 429 answer."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
import structlog
from aiohttp.test_utils import make_mocked_request

from gateway.intake.ratelimit import RateLimiter, RateLimitOptions, logged_network
from gateway.model.errors import ConfigError
from gateway.server.app import Gateway
from gateway.store import journal
from tests.conftest import base_url, gateway_config
from tests.test_metrics import scrape, value

FORM = {"name": "黄女士", "phone": "13800138000", "content": "小区门口共享单车堆放严重"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ip(text: str) -> Any:
    return ipaddress.ip_address(text)


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimitOptions(per_minute=6, burst=3, exempt=[]), clock)
    client = ip("203.0.113.9")
    assert [limiter.check(client).allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.check(client)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(10.0)
    clock.now += 10.0  # one token back (6 per minute)
    assert limiter.check(client).allowed
    assert not limiter.check(client).allowed
    clock.now += 3600  # a long pause refills up to the burst, not beyond
    assert [limiter.check(client).allowed for _ in range(4)] == [True, True, True, False]


def test_one_log_line_per_flood_and_clients_apart() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimitOptions(per_minute=60, burst=1, exempt=[]), clock)
    first, other = ip("203.0.113.9"), ip("198.51.100.7")
    assert limiter.check(first).allowed
    verdicts = [limiter.check(first) for _ in range(3)]
    assert [v.first_refusal for v in verdicts] == [True, False, False]
    assert limiter.check(other).allowed  # another client has its own bucket
    clock.now += 1.0
    assert limiter.check(first).allowed
    assert limiter.check(first).first_refusal  # a new flood: logged again
    assert limiter.refused == 4


def test_exempt_and_unknown_clients_are_not_limited() -> None:
    limiter = RateLimiter(RateLimitOptions(per_minute=1, burst=1), Clock())
    assert all(limiter.check(ip("127.0.0.1")).allowed for _ in range(5))
    assert all(limiter.check(ip("::1")).allowed for _ in range(5))
    assert all(limiter.check(None).allowed for _ in range(5))
    assert limiter.check(ip("203.0.113.9")).allowed
    assert not limiter.check(ip("203.0.113.9")).allowed


def test_memory_is_bounded_by_max_clients() -> None:
    limiter = RateLimiter(RateLimitOptions(per_minute=1, burst=1, exempt=[], max_clients=2),
                          Clock())
    for n in range(1, 4):
        assert limiter.check(ip(f"203.0.113.{n}")).allowed
    assert limiter.buckets.count() == 2
    # the oldest was forgotten: it starts afresh, the others are still limited
    assert limiter.check(ip("203.0.113.1")).allowed
    assert not limiter.check(ip("203.0.113.3")).allowed


def request(remote: str, forwarded: str | None = None) -> Any:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    transport = _Transport(remote)
    return make_mocked_request("POST", "/intake/web", headers=headers, transport=transport)


class _Transport:
    def __init__(self, remote: str) -> None:
        self.remote = remote

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.remote, 50000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize(("remote", "forwarded", "client"), [
    ("203.0.113.9", None, "203.0.113.9"),  # a direct client
    ("203.0.113.9", "198.51.100.7", "203.0.113.9"),  # not a trusted proxy: header ignored
    ("127.0.0.1", "198.51.100.7", "198.51.100.7"),  # the same host's reverse proxy
    ("127.0.0.1", "1.2.3.4, 198.51.100.7", "198.51.100.7"),  # right-most untrusted hop
    ("127.0.0.1", "198.51.100.7, 10.0.0.2", "198.51.100.7"),  # skips a trusted inner proxy
    ("127.0.0.1", "not-an-ip, 10.0.0.2", "10.0.0.2"),  # garbage further out: stop there
    ("127.0.0.1", None, "127.0.0.1"),  # the proxy itself, or a local curl
    ("::ffff:203.0.113.9", None, "203.0.113.9"),  # IPv4 on a dual-stack socket
])
def test_who_the_client_is(remote: str, forwarded: str | None, client: str) -> None:
    options = RateLimitOptions(
        trusted_proxies=[ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.0.0.0/8")])
    assert str(RateLimiter(options).client(request(remote, forwarded))) == client


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        gateway_config(tmp_path, "sqlite:///x.db", sources=[{
            "name": "web", "adapter": "web_mailbox",
            "rate_limit": {"per_minute": 0, "trusted_proxies": ["not-a-network"]},
        }])
    text = str(caught.value)
    assert "rate_limit.per_minute" in text
    assert "rate_limit.trusted_proxies" in text


async def start(tmp_path: Path, **web: Any) -> Gateway:
    config = gateway_config(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}",
                            sources=[{"name": "web", "adapter": "web_mailbox", **web}])
    gw = Gateway(config)
    await gw.start()
    return gw


async def test_a_flooding_client_gets_429_and_nothing_is_journaled(tmp_path: Path) -> None:
    gw = await start(tmp_path, rate_limit={"per_minute": 1, "burst": 2})
    flood = {"X-Forwarded-For": "203.0.113.9"}  # through the same host's reverse proxy
    try:
        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            with structlog.testing.capture_logs() as logs:
                answers = [await client.post("/intake/web", headers=flood, json={
                    **FORM, "content": f"第{n}件：{FORM['content']}"}) for n in range(4)]
            neighbour = await client.post("/intake/web", json=FORM,
                                          headers={"X-Forwarded-For": "198.51.100.7"})
            local = [await client.post("/intake/web", json={**FORM, "content": f"本机{n}"})
                     for n in range(3)]
        journaled = sum((await gw.store.read(journal.count_by_status)).values())
        samples = await scrape(gw)
    finally:
        await gw.stop()
    assert [a.status_code for a in answers] == [202, 202, 429, 429]
    refused = answers[2]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    body = refused.json()
    assert body["status"] == 429 and "请稍后再试" in body["title"] and "try again" in body["title"]
    assert neighbour.status_code == 202  # another citizen is not held up
    assert [a.status_code for a in local] == [202, 202, 202]  # loopback is exempt
    assert journaled == 2 + 1 + 3  # refused submissions were never taken in
    assert value(samples, "minsheng_intake_refused_total", source="web",
                 reason="rate_limited") == 2
    # Logged once per flood, with the client's network, not its address.
    limited = [line for line in logs if line["event"] == "rate_limited"]
    assert limited == [{"event": "rate_limited", "log_level": "warning", "source": "web",
                        "client_network": "203.0.113.0/24", "retry_after_s": ANY}]
    assert "203.0.113.9" not in repr(logs)


@pytest.mark.parametrize(("address", "logged"), [
    ("203.0.113.9", "203.0.113.0/24"),
    ("2001:db8:1234:5678::9", "2001:db8:1234::/48"),
    (None, "unknown"),
])
def test_a_log_line_holds_the_clients_network_only(address: str | None, logged: str) -> None:
    client = ipaddress.ip_address(address) if address else None
    assert logged_network(client) == logged


async def test_limits_can_cover_loopback_or_be_turned_off(tmp_path: Path) -> None:
    strict = await start(tmp_path / "strict", rate_limit={
        "per_minute": 1, "burst": 1, "exempt": [], "trusted_proxies": []})
    try:
        async with httpx.AsyncClient(base_url=base_url(strict)) as client:
            codes = [(await client.post("/intake/web", json={**FORM, "content": f"第{n}件"}))
                     .status_code for n in range(2)]
    finally:
        await strict.stop()
    off = await start(tmp_path / "off", rate_limit=None)
    try:
        async with httpx.AsyncClient(base_url=base_url(off)) as client:
            flood = {"X-Forwarded-For": "203.0.113.9"}
            unlimited = [(await client.post("/intake/web", headers=flood,
                                            json={**FORM, "content": f"第{n}件"})).status_code
                         for n in range(15)]
    finally:
        await off.stop()
    assert codes == [202, 429]
    assert set(unlimited) == {202}
