"""Per-client rate limits for push sources a public form posts to.

A public web mailbox is one script away from a flood: ten thousand submissions from one
address would become ten thousand cases for the departments. Each client address gets a
token bucket (``burst`` submissions at once, refilled at ``per_minute``); a client
with an empty bucket is answered 429 with ``Retry-After`` and nothing is journaled, since
nothing was acknowledged and the sender may retry.

Who the client is: the connection's address, or, when the connection comes from a
trusted proxy (``trusted_proxies``, loopback by default: a reverse proxy on the same
host), the right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy.
Clients in ``exempt`` (loopback by default: health checks, the operator's own curl, a
same-host proxy that forwards no ``X-Forwarded-For``) are never limited.

Buckets live in memory, at most ``max_clients`` of them (the least recently seen are
forgotten first, which only ever lets a forgotten client start afresh), in memory the
workers of one machine share (gateway/intake/shared_buckets.py): the limit holds for the
machine however many workers it runs. Each replica limits on its own.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.intake.shared_buckets import Bucket, BucketArena, BucketTable
from gateway.support import problem
from gateway.support.rate_limits import LOOPBACK, IPNetwork, RateLimitOptions

__all__ = ["LOOPBACK", "RateLimitOptions", "RateLimiter", "Verdict", "logged_network",
           "too_many"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Verdict:
    retry_after_s: float = 0.0  # 0: go ahead (one token taken)
    first_refusal: bool = False  # the client was accepted until now: worth one log line

    @property
    def allowed(self) -> bool:
        return self.retry_after_s == 0.0


class RateLimiter:
    """Token buckets by client address (or any other key: ``take``)."""

    def __init__(self, options: RateLimitOptions,
                 clock: Callable[[], float] = time.monotonic,
                 buckets: BucketTable | None = None) -> None:
        """``buckets``: the limiter's table in the arena of its worker group, under a name
        every worker gives it (``BucketArena.table``); by default a table of its own.
        ``clock``: ``time.monotonic`` is the one clock of every process on the machine."""
        self.options = options
        self.rate_per_s = options.per_minute / 60.0
        self.clock = clock
        self.buckets = buckets or BucketArena().table("", options.max_clients)
        self.refused = 0  # this process's refusals (a per-worker metric)
        # What each connection's address parses to and whether it is a trusted proxy or
        # exempt: the same few addresses come again and again, and ``ipaddress`` parsing
        # and network membership cost microseconds per request.
        self._remote = functools.lru_cache(maxsize=options.max_clients)(self._classify)
        self._exempt = functools.lru_cache(maxsize=options.max_clients)(self._is_exempt)

    def _classify(self, remote: str) -> tuple[IPAddress | None, bool]:
        """A connection's address and whether it is a trusted proxy."""
        address = _address(remote)
        return address, address is not None and _within(address, self.options.trusted_proxies)

    def _is_exempt(self, address: IPAddress) -> bool:
        return _within(address, self.options.exempt)

    def client(self, request: web.Request) -> IPAddress | None:
        """The client's address (see the module's docstring); None when unknown."""
        address, trusted = self._remote(request.remote or "")
        if not trusted:
            return address
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            forwarded = _address(hop)
            if forwarded is None:  # garbage from further out: trust what we know
                return address
            address = forwarded
            if not _within(forwarded, self.options.trusted_proxies):
                break
        return address

    def check(self, client: IPAddress | None) -> Verdict:
        """Whether ``client`` may submit now (then one token is taken), else in how many
        seconds it may. Unknown clients (no address) and exempt ones are not limited."""
        if client is None or self._exempt(client):
            return Verdict()
        return self.take(str(client))

    def take(self, key: str) -> Verdict:
        """One token of the bucket named ``key`` (a client address, or anything else a
        limit is kept per, e.g. a case code), or in how many seconds there is one."""
        now, burst = self.clock(), float(self.options.burst)

        def step(found: Bucket | None) -> Bucket:
            tokens = burst if found is None else min(
                burst, found.tokens + max(now - found.at, 0.0) * self.rate_per_s)
            if tokens >= 1.0:
                return Bucket(tokens - 1.0, now, refusing=False)
            return Bucket(tokens, now, refusing=True)

        found, bucket = self.buckets.update(key, step)
        if not bucket.refusing:
            return Verdict()
        self.refused += 1
        first_refusal = found is None or not found.refusing
        return Verdict((1.0 - bucket.tokens) / self.rate_per_s, first_refusal)


# What a log line says of a refused client: its network, not its address (an address
# identifies a household's connection, personal data a log must not hold), wide enough
# to be no one's and narrow enough to block at a firewall.
LOGGED_PREFIX = {4: 24, 6: 48}


def logged_network(client: IPAddress | None) -> str:
    """``client``'s network as a log line may hold it: ``203.0.113.0/24``, ``2001:db8::/48``."""
    if client is None:
        return "unknown"
    return str(ipaddress.ip_network((client, LOGGED_PREFIX[client.version]), strict=False))


SUBMISSIONS = "提交过于频繁，请稍后再试 (too many submissions, try again later)"


def too_many(retry_after_s: float, title: str = SUBMISSIONS) -> web.Response:
    """429 problem+json, in Chinese with English beside it, with ``Retry-After``."""
    seconds = max(1, math.ceil(retry_after_s))
    response = problem.problem(
        429, "rate-limited", title,
        f"请 {seconds} 秒后重试 / retry in {seconds} s", retry_after_s=seconds,
    )
    response.headers["Retry-After"] = str(seconds)
    return response


def _address(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:203.0.113.9 from a dual-stack socket
    return address


def _within(address: IPAddress, networks: list[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)
