"""The options of a token-bucket rate limit (``gateway/intake/ratelimit.py`` applies
them). Here, below the intake, because config blocks of the core use them too (the
look-up by case code, ``gateway/support/lookup_config.py``), and the config is parsed
below the layers that limit."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ["127.0.0.0/8", "::1/128"]


def networks(texts: Iterable[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(t) for t in texts]


class RateLimitOptions(BaseModel):
    """The ``rate_limit:`` block of a source; ``rate_limit: null`` turns limiting off."""

    model_config = ConfigDict(extra="forbid")

    per_minute: float = Field(default=30, gt=0, description="submissions per client per minute")
    burst: int = Field(default=10, ge=1, description="submissions a client may send at once")
    trusted_proxies: list[IPNetwork] = Field(default_factory=lambda: networks(LOOPBACK))
    exempt: list[IPNetwork] = Field(default_factory=lambda: networks(LOOPBACK))
    max_clients: int = Field(default=100_000, ge=1, description="buckets kept in memory")
