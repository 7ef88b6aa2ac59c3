"""A real web server for the opinion-channel tests: aiohttp on loopback serving fixture
feeds and pages, and recording every request.

Each route (a path with its query string) answers as told: a body with a content type
(the charset it declares may be a lie), a status, extra headers, a delay before
answering, conditional GET (``etag`` / ``last_modified`` → 304), or a redirect. Paths
without a route answer 404 (so does ``/robots.txt`` unless one is added).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from multidict import CIMultiDict

from tests.pg import free_port

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class Seen:
    path: str
    headers: CIMultiDict[str]
    at: float
    status: int = 0


class FixtureServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: bytes | str | Path = b"", **route: object) -> Route:
        if isinstance(body, Path):
            body = body.read_bytes()
        elif isinstance(body, str):
            body = body.encode("utf-8")
        self.routes[path] = made = Route(body, **route)  # type: ignore[arg-type]
        return made

    def fixture(self, path: str, fixture: str, **route: object) -> Route:
        return self.add(path, FIXTURES / fixture, **route)

    def redirect(self, path: str, to: str, status: int = 301) -> None:
        self.routes[path] = Route(status=status, headers={"Location": to})

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.path_qs, request.headers.copy(), time.monotonic())
        self.requests.append(seen)
        route = self.routes.get(request.path_qs) or self.routes.get(request.path)
        if route is None:
            seen.status = 404
            return web.Response(status=404, text="not found")
        if route.delay_s:
            await asyncio.sleep(route.delay_s)
        headers = dict(route.headers)
        if route.etag:
            headers["ETag"] = route.etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        fresh = (route.etag and request.headers.get("If-None-Match") == route.etag) or (
            route.last_modified and request.headers.get("If-Modified-Since") == route.last_modified
        )
        seen.status = 304 if fresh else route.status
        if fresh:
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = route.content_type
        return web.Response(status=route.status, body=route.body, headers=headers)

    async def start(self) -> FixtureServer:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
