"""The one factory of outbound HTTP clients, so timeouts and limits are set in one place
(and tests can mock every outbound call with respx)."""

from __future__ import annotations

import httpx

USER_AGENT = "MinshengGateway/0.1 (+https://minsheng.invalid)"


def make_client(
    *, timeout_s: float = 10.0, max_connections: int = 16, user_agent: str | None = None,
    follow_redirects: bool = False,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=8),
        headers={"user-agent": user_agent or USER_AGENT},
        follow_redirects=follow_redirects,
    )
