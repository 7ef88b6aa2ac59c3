"""``python -m tests.gateway_with_a_bug run --config FILE``: ``minsheng run`` with one more
route, ``GET /bug``, whose handler raises with the ``X-Probe`` header's value in its
message. It stands in for any bug in a handler (the real ones get fixed, so none can be
relied on to stay): the log scan needs an unhandled exception, traceback and all."""

from __future__ import annotations

from typing import Any

from aiohttp import web

import gateway.server.http
from gateway.cli import main

_build_app = gateway.server.http.build_app


async def _bug(request: web.Request) -> web.Response:
    raise RuntimeError(f"a bug while handling {request.headers.get('X-Probe', '')}")


def _with_bug(gw: Any) -> web.Application:
    app = _build_app(gw)
    app.router.add_get("/bug", _bug)
    return app


if __name__ == "__main__":
    gateway.server.http.build_app = _with_bug
    main()
