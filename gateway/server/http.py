"""The inbound HTTP surface: intake routes of push adapters, health, the pull feed, the
status API (gateway/server/status_api.py), the look-up by case code
(gateway/server/lookup_route.py) and the Open311 read side (gateway/server/open311.py)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.ops import routes as ops
from gateway.ops.running import RunningGateway
from gateway.server import attachment_route, lookup_route, open311, openapi, status_api
from gateway.server.api_access import GATEWAY_KEY, api_view, log_access
from gateway.server.api_access import authorized as _authorized
from gateway.server.api_access import gateway_of as _gateway
from gateway.server.http_edge import watch_requests
from gateway.server.http_errors import make_edge_errors
from gateway.store import StoreUnavailable, cases
from gateway.store.audit import AuditAction
from gateway.support import problem
from gateway.support.logging import get_logger, mask_text
from gateway.support.query import whole_number

log = get_logger("gateway.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FEED_MAX_LIMIT = 500


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (echoed back) and turn a store outage into a 503."""
    # A caller's own id is masked once here (it might hold a phone number), so the id in
    # the logs and the one echoed back are the same; our own ids are never masked.
    request_id = mask_text(request.headers.get("X-Request-Id", "")[:64]) or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    try:
        response = await handler(request)
    except StoreUnavailable as exc:
        log.error("store_unavailable", path=request.path, error=str(exc))
        response = problem.problem(
            503, "store-unavailable", "存储暂不可用，请稍后重试 (store unavailable, retry later)",
        )
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    response.headers["X-Request-Id"] = request_id
    if request.path.startswith("/intake/"):
        elapsed = time.perf_counter() - started
        _gateway(request).metrics.observe_intake(request.path, elapsed)
        log.debug("request", path=request.path, status=response.status,
                  ms=round(elapsed * 1000, 2))
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the store answers and no critical source is down; other sources down
    are reported here but do not fail the probe."""
    gateway = _gateway(request)
    body: dict[str, object] = {
        "started": gateway.started,
        "sources": {n: {"state": s.state, "reason": s.reason}
                    for n, s in gateway.status.sources.items()},
    }
    try:
        await gateway.store.ping()
        body["store"] = "ok"
    except Exception as exc:
        body["store"] = f"unreachable: {exc}"
        return web.json_response({"status": "not ready", **body}, status=503)
    if not gateway.started:
        return web.json_response({"status": "starting", **body}, status=503)
    if down := gateway.status.critical_down():
        body["critical_down"] = down
        return web.json_response({"status": "not ready", **body}, status=503)
    return web.json_response({"status": "ready", **body})


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        return whole_number(request.query.get(name, str(default)), low, high)
    except ValueError as exc:
        raise web.HTTPUnprocessableEntity(
            text=json.dumps({
                "type": "https://minsheng.invalid/problems/bad-parameter", "status": 422,
                "title": "参数无效 (invalid parameter)",
                "errors": [{"field": name, "reason": str(exc)}],
            }, ensure_ascii=False),
            content_type=problem.PROBLEM_TYPE,
        ) from None


async def list_cases(request: web.Request) -> web.Response:
    """Complaints in commit order after ``after``; ``next_cursor`` continues the feed."""
    if (refusal := _authorized(request)) is not None:
        return refusal
    after = _int_param(request, "after", 0, 0, 2**62)
    limit = _int_param(request, "limit", 100, 1, FEED_MAX_LIMIT)
    rows = await _gateway(request).store.read(lambda tx: cases.feed_after(tx, after, limit))
    cursor = rows[-1].feed_pos if rows else after
    await log_access(request, AuditAction.FEED_READ, feed_range(after, rows), {
        "after": after, "limit": limit, "count": len(rows),
        **({"first": rows[0].case_code, "last": rows[-1].case_code} if rows else {})})
    body = (
        '{"cases":[' + ",".join(api_view(request, r.document) for r in rows) + "],"
        f'"next_cursor":"{cursor}","has_more":{"true" if len(rows) == limit else "false"}}}'
    )
    return web.Response(text=body, content_type="application/json")


def feed_range(after: int, rows: list[cases.CaseRow]) -> str:
    """Which cases a page of the feed held, by feed position: one access log entry per
    request names them all (positions are unique and never reused)."""
    if not rows:
        return f"feed:{after}+0"
    return f"feed:{rows[0].feed_pos}-{rows[-1].feed_pos}"


def build_app(gateway: RunningGateway) -> web.Application:
    limits = [getattr(a, "max_body", 0) for a in gateway.adapters.values()]
    app = web.Application(
        middlewares=[watch_requests, request_context, make_edge_errors(gateway.edge)],
        client_max_size=max([1024**2, *limits]) + 65536
    )
    app[GATEWAY_KEY] = gateway
    app.add_routes([
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/v1/cases", list_cases),
        web.get("/v1/cases/{case_code}", status_api.get_case),
        web.post("/v1/cases/{case_code}/status", status_api.post_status),
    ])
    app.add_routes(attachment_route.routes(gateway, _authorized))
    app.add_routes(lookup_route.routes(gateway))  # /v1/lookup, /lookup: public
    if gateway.config.open311 is not None:
        app.add_routes(open311.routes())
    ops.setup(app, gateway)  # /metrics, /v1/status, /ops
    openapi.setup(app, gateway)  # /openapi.json
    for adapter in gateway.adapters.values():
        app.add_routes(adapter.routes(gateway.intake))
    return app
