"""Connection hygiene of the HTTP server: what one client may hold of the process.

aiohttp bounds header sizes and the keep-alive idle time, but it has no deadline for
reading a request head, no minimum body rate and no cap on open connections, and its
protocol-level errors (a malformed request line or header) are answered in text/plain.
``EdgeRequestHandler`` adds those on top of aiohttp's public ``web.RequestHandler``:

* **head timeout**: a request head not complete ``head_timeout_s`` after its first byte
  (or after the connection opened) gets a 408 problem+json and the connection closes;
* **body minimum rate**: while a handler waits for a body, fewer than
  ``body_min_rate`` bytes/s over a ``body_rate_window_s`` window closes the connection
  (with a 408 when nothing of the answer was sent yet);
* **connection cap**: at ``max_connections`` open connections a new one takes the place
  of the longest-idle one (not in a request: waiting for a head, or kept alive), which
  gets a 503 problem+json with ``Retry-After: 1`` and is closed; when every connection is
  in a request, the new one gets that 503 and is closed at once, without parsing. So
  idle sockets cannot lock out a client that sends its request;
* **protocol errors** as problem+json (``handle_error``, a public method of
  ``RequestHandler``, pinned by tests/test_http_edge.py).

``EdgeSite`` listens with this protocol; ``watch_requests`` (a middleware) tells the
protocol when a request is in a handler, so a head timer never cuts a request being served.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import http_exceptions, web
from aiohttp.streams import StreamReader

from gateway.ops.edge_metrics import CutReason, EdgeMetrics
from gateway.server.http_errors import client_gone, log_unexpected, route_of, status_problem
from gateway.support.config import ServerConfig
from gateway.support.logging import get_logger

log = get_logger("gateway.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Watch = Literal["none", "head", "body"]
FD_RESERVE = 64  # descriptors kept for the store, sinks, logs and outbound clients


@dataclass(frozen=True)
class EdgeLimits:
    head_timeout_s: float
    body_min_rate: int
    body_rate_window_s: float
    keepalive_timeout_s: float
    max_connections: int

    @classmethod
    def from_config(cls, server: ServerConfig, open_files: int) -> EdgeLimits:
        """The configured limits, ``max_connections`` lowered to fit the descriptors."""
        cap = server.max_connections
        if cap > open_files - FD_RESERVE:
            cap = max(1, open_files - FD_RESERVE)
            log.warning("max_connections_lowered", configured=server.max_connections,
                        effective=cap, open_files_limit=open_files)
        return cls(server.head_timeout_s, server.body_min_rate, server.body_rate_window_s,
                   server.keepalive_timeout_s, cap)


@dataclass
class EdgeState:
    """What every connection of one server shares: the limits, the figures, the open
    connections, and those of them not in a request, longest idle first (an insertion-
    ordered dict), so a new connection at the cap can take the place of an idle one."""

    limits: EdgeLimits
    metrics: EdgeMetrics
    open: int = field(default=0)
    idle: dict[EdgeRequestHandler, None] = field(default_factory=dict)

    def make_room(self) -> bool:
        """At the cap, close the longest-idle connection; False when every one is busy."""
        if self.open < self.limits.max_connections:
            return True
        while self.idle:
            victim = next(iter(self.idle))
            self.idle.pop(victim)
            if victim.evict():
                return True
        return False


def raise_open_files_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; the limit now in force.

    With the usual soft limit of 1024, about a thousand idle sockets make ``accept()``
    fail with EMFILE and the gateway stops answering anyone.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if target <= soft:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("open_files_limit_unchanged", soft=soft, hard=hard, error=str(exc))
        return soft
    return target


def raw_answer(response: web.Response, reason: str, **headers: str) -> bytes:
    """``response`` as HTTP/1.1 bytes, for a transport no request handler owns."""
    body = response.body if isinstance(response.body, bytes) else b""
    lines = [f"HTTP/1.1 {response.status} {reason}",
             f"Content-Type: {response.headers['Content-Type']}",
             f"Content-Length: {len(body)}", "Connection: close",
             *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


_OVERLOADED = raw_answer(
    status_problem(503, "连接数已满，请稍后重试 (too many connections, retry shortly)"),
    "Service Unavailable", Retry_After="1",
)


def _timed_out(detail: str) -> bytes:
    return raw_answer(status_problem(408, detail), "Request Timeout")


_HEAD_TIMED_OUT = _timed_out("请求头未在时限内收齐 (the request head was not complete in time)")
_BODY_TOO_SLOW = _timed_out("请求体传输过慢 (the request body arrived below the minimum rate)")

_PARSE_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (http_exceptions.LineTooLong, "请求行或请求头过长 (request line or a header too long)"),
    (http_exceptions.InvalidHeader, "请求头无效 (invalid header)"),
    (http_exceptions.BadStatusLine, "请求行无效 (invalid request line)"),
)


def parse_error_detail(exc: BaseException | None) -> str:
    """What was wrong, by class: aiohttp's message may quote the raw bytes (personal data)."""
    for cls, detail in _PARSE_ERRORS:
        if isinstance(exc, cls):
            return detail
    return "无法解析的 HTTP 请求 (unparsable HTTP request)"


class EdgeRequestHandler(web.RequestHandler):
    """aiohttp's protocol with a head deadline, a body rate, a connection cap and
    problem+json for what aiohttp answers itself."""

    def __init__(self, manager: web.Server, *, edge: EdgeState, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = edge
        self._edge_refused = False
        self._edge_watch: Watch = "none"
        self._edge_timer: asyncio.TimerHandle | None = None
        self._edge_in_request = False
        self._edge_served = 0
        self._edge_request: web.BaseRequest | None = None
        self._edge_body: StreamReader | None = None
        self._edge_draining: StreamReader | None = None
        self._edge_bytes = 0
        self._edge_bytes_at_check = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._edge.make_room():
            self._edge_refused = True
            self._edge.metrics.cut("over_capacity")
            assert isinstance(transport, asyncio.Transport)
            transport.write(_OVERLOADED)
            transport.close()
            return
        self._edge.open += 1
        self._edge.idle[self] = None
        self._edge.metrics.connections_open.inc()
        super().connection_made(transport)
        self._watch("head", self._edge.limits.head_timeout_s)

    def evict(self) -> bool:
        """Make room for a new connection: closed, with a 503 (retry shortly) unless it
        served a request already (a kept-alive connection is just closed); False if gone."""
        return self._cut("evicted_idle", b"" if self._edge_served else _OVERLOADED)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._edge_refused:
            return
        self._unwatch()
        self._edge.idle.pop(self, None)
        self._edge.open -= 1
        self._edge.metrics.connections_open.dec()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._edge_refused:
            return
        self._edge_bytes += len(data)
        super().data_received(data)
        if self._head_may_start():
            self._watch("head", self._edge.limits.head_timeout_s)

    def request_started(self, request: web.BaseRequest) -> None:
        """The head is in: stop its timer; watch the body's rate while one is coming."""
        self._edge_in_request = True
        self._edge.idle.pop(self, None)
        self._edge_request = request
        self._unwatch()
        limits = self._edge.limits
        if limits.body_min_rate > 0 and request.body_exists and not request.content.is_eof():
            self._edge_body = request.content
            self._edge_bytes_at_check = self._edge_bytes
            self._watch("body", limits.body_rate_window_s)

    def request_finished(self) -> None:
        """The handler is done. A body it did not read is drained by aiohttp (bounded by
        its ``lingering_time``): those bytes are no new request head."""
        self._edge_in_request = False
        self._edge_served += 1
        if self.transport is not None:
            self._edge.idle[self] = None  # now the most recently active
        if self._edge_request is not None and not self._edge_request.content.is_eof():
            self._edge_draining = self._edge_request.content
        self._edge_request = None
        self._edge_body = None
        self._unwatch()

    def _head_may_start(self) -> bool:
        if self._edge_in_request or self._edge_watch != "none":
            return False
        if self._edge_draining is not None and not self._edge_draining.is_eof():
            return False
        self._edge_draining = None
        return True

    def _watch(self, what: Watch, seconds: float) -> None:
        self._unwatch()
        self._edge_watch = what
        self._edge_timer = self._loop.call_later(seconds, self._on_timer)

    def _unwatch(self) -> None:
        if self._edge_timer is not None:
            self._edge_timer.cancel()
        self._edge_timer = None
        self._edge_watch = "none"

    def _on_timer(self) -> None:
        what, self._edge_timer, self._edge_watch = self._edge_watch, None, "none"
        if what == "head" and not self._edge_in_request:
            self._cut("head_timeout", _HEAD_TIMED_OUT)
        elif what == "body" and self._edge_body is not None and not self._edge_body.is_eof():
            limits = self._edge.limits
            arrived = self._edge_bytes - self._edge_bytes_at_check
            if arrived < limits.body_min_rate * limits.body_rate_window_s:
                self._cut("body_too_slow", _BODY_TOO_SLOW)
                return
            self._edge_bytes_at_check = self._edge_bytes
            self._watch("body", limits.body_rate_window_s)

    def _cut(self, reason: CutReason, answer: bytes) -> bool:
        """Send ``answer`` when nothing was sent for the current request, then close;
        False when the connection was closing already (keep-alive timer, client)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        self._edge.metrics.cut(reason)
        log.debug("connection_cut", reason=reason)  # counted; one line each would flood
        request = self._edge_request
        if answer and (request is None or request.writer.output_size == 0):
            transport.write(answer)
        self.force_close()
        return True

    def handle_error(
        self, request: web.BaseRequest, status: int = 500,
        exc: BaseException | None = None, message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's own error answer (a request it could not parse, or an exception no
        middleware caught) as problem+json, logged masked."""
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had begun; the connection is closed")
        if status < 500:
            log.info("http_protocol_error", status=status,
                     error_type=type(exc).__name__ if exc else None)
            response = status_problem(status, parse_error_detail(exc))
        else:
            if not (isinstance(exc, ConnectionError) and client_gone(request)):
                log_unexpected(request, exc or RuntimeError(message or "unknown"))
                self._edge.metrics.unexpected_errors.labels(route_of(request)).inc()
            response = status_problem(500, "请求编号见 X-Request-Id (see the X-Request-Id header)")
        response.force_close()
        return response


@web.middleware
async def watch_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell an ``EdgeRequestHandler`` when a request is being served (outermost)."""
    protocol = request.protocol
    if not isinstance(protocol, EdgeRequestHandler):
        return await handler(request)
    protocol.request_started(request)
    try:
        return await handler(request)
    finally:
        protocol.request_finished()


class EdgeSite(web.BaseSite):
    """A TCP site whose connections are ``EdgeRequestHandler`` protocols.

    aiohttp's ``TCPSite`` always builds its plain protocol; ``BaseSite`` is aiohttp's
    public extension point for sites, and ``runner.server`` its public connection manager.
    """

    def __init__(self, runner: web.BaseRunner, host: str, port: int, edge: EdgeState,
                 sock: socket.socket | None = None, **handler_args: Any) -> None:
        super().__init__(runner, backlog=listen_backlog(edge.limits.max_connections))
        self._edge_host = host
        self._edge_port = port
        self._edge_sock = sock  # bound by the worker group's parent (gateway/server/workers.py)
        self._edge_state = edge
        self._handler_args = handler_args

    @property
    def name(self) -> str:
        return f"http://{self._edge_host}:{self._edge_port}"

    @property
    def state(self) -> EdgeState:
        return self._edge_state

    def _protocol(self) -> EdgeRequestHandler:
        server = self._runner.server
        assert server is not None
        return EdgeRequestHandler(server, loop=asyncio.get_running_loop(),
                                  edge=self._edge_state, **self._handler_args)

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        if self._edge_sock is not None:  # already listening: accept from the shared queue
            self._server = await loop.create_server(self._protocol, sock=self._edge_sock)
            return
        self._server = await loop.create_server(
            self._protocol, self._edge_host, self._edge_port, backlog=self._backlog,
            reuse_address=True,
        )


def listen_backlog(max_connections: int) -> int:
    """The accept queue's length: a burst of connects beyond the default 128 would
    overflow it, and the kernel drops them silently instead of the cap refusing them
    with a 503."""
    return min(4096, max(128, max_connections))


def handler_args(limits: EdgeLimits) -> dict[str, Any]:
    """aiohttp ``RequestHandler`` settings of the edge: no access log (intake requests
    are logged by the gateway, masked), no inflation of request bodies, the keep-alive."""
    return {"access_log": None, "auto_decompress": False,
            "keepalive_timeout": limits.keepalive_timeout_s}


async def start_site(runner: web.BaseRunner, server: ServerConfig,
                     metrics: EdgeMetrics, sock: socket.socket | None = None) -> EdgeSite:
    """Raise the open-files limit, then listen on ``server.listen`` with the edge limits
    (or accept on ``sock``, the worker group's socket, already listening there)."""
    limits = EdgeLimits.from_config(server, raise_open_files_limit())
    site = EdgeSite(runner, server.host, server.port, EdgeState(limits, metrics), sock,
                    **handler_args(limits))
    await site.start()
    return site
