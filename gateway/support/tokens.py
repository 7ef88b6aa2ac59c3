"""Comparing secrets a caller sends (bearer tokens, signatures, cookies) with ours.

``hmac.compare_digest`` compares in constant time, but raises ``TypeError`` for a ``str``
with characters outside ASCII: a request with ``Authorization: Bearer é`` would be a 500
instead of a 401. Every comparison goes through here, on UTF-8 bytes (a lone surrogate,
which a percent-decoded path token may hold, is encoded as is: it never matches).
"""

from __future__ import annotations

import hmac

from aiohttp import web


def same_secret(given: str | None, expected: str) -> bool:
    """Whether ``given`` is ``expected``, in constant time; False when nothing is given."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def bearer_ok(request: web.Request, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>``."""
    return same_secret(request.headers.get("Authorization"), f"Bearer {token}")
