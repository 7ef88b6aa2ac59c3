"""Every answer of the HTTP edge is 2xx or problem+json: aiohttp's own errors included.

aiohttp answers unmatched routes, wrong methods, oversized bodies and its protocol-level
parse failures in ``text/plain``; this module turns each into RFC 9457 problem details in
Chinese with English beside it, refuses compressed request bodies before anything reads
them, and answers a handler's unexpected exception with a counted, logged 500 instead of
aiohttp's bare page: a 500 is a defect signal, never an expected outcome.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.ops.edge_metrics import EdgeMetrics
from gateway.store import StoreUnavailable
from gateway.support import problem
from gateway.support.logging import get_logger, mask_text

log = get_logger("gateway.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IDENTITY_ENCODINGS = frozenset({"", "identity"})

# status: (slug, title). Titles say what is wrong in Chinese, then English.
_TITLES: dict[int, tuple[str, str]] = {
    400: ("bad-request", "请求格式错误 (malformed request)"),
    404: ("no-such-route", "没有这个地址 (no such route)"),
    405: ("method-not-allowed", "不支持该请求方法 (method not allowed)"),
    408: ("request-timeout", "请求超时 (request timeout)"),
    411: ("length-required", "缺少请求体长度 (Content-Length required)"),
    413: ("too-large", "请求体过大 (request body too large)"),
    414: ("uri-too-long", "请求地址过长 (request URI too long)"),
    415: ("unsupported-media-type", "不支持的类型或编码 (unsupported media type or encoding)"),
    422: ("validation", "提交内容不符合规范 (the submission breaks the standard)"),
    431: ("headers-too-large", "请求头过大 (request header fields too large)"),
    503: ("overloaded", "服务繁忙 (service busy)"),
    500: ("internal-error", "网关内部错误，已记录 (internal gateway error, logged)"),
}


def title_of(status: int) -> tuple[str, str]:
    """The slug and bilingual title of ``status``, a generic one for any 4xx not listed."""
    if status in _TITLES:
        return _TITLES[status]
    return ("client-error", f"请求无法处理 (request cannot be processed, HTTP {status})")


def status_problem(status: int, detail: str | None = None) -> web.Response:
    slug, title = title_of(status)
    return problem.problem(status, slug, title, detail)


def encoding_refusal(request: web.BaseRequest) -> web.Response | None:
    """415 for a body sent with a ``Content-Encoding`` other than identity.

    The server does not inflate request bodies (``auto_decompress=False``): a 4 MB gzip
    body can inflate to 4 GB, and inflating costs CPU on the event loop before routing or
    authentication. No source needs compressed uploads, so refusing is the small choice;
    nothing of the body is read.
    """
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in IDENTITY_ENCODINGS or not request.body_exists:
        return None
    return problem.problem(
        415, "content-encoding", title_of(415)[1],
        "请求头 Content-Encoding：请求体不得压缩，仅接受 identity "
        "(header Content-Encoding: compressed request bodies are refused; send identity)",
        field="Content-Encoding",
    )


def _from_http_exception(exc: web.HTTPException) -> web.Response | None:
    """aiohttp's own 4xx (404, 405, 413 of client_max_size, ...) as problem+json; None
    for redirects and answers that are problem+json already (they are re-raised)."""
    if exc.status < 400 or exc.content_type == problem.PROBLEM_TYPE:
        return None
    detail = None
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        detail = f"请求体超过上限 (the body exceeds the limit): {exc.text}"
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        detail = "允许的方法 (allowed methods): " + ", ".join(sorted(exc.allowed_methods))
    response = status_problem(exc.status, detail)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def route_of(request: web.BaseRequest) -> str:
    """A low-cardinality label: the route's pattern, never the raw path."""
    if isinstance(request, web.Request):
        resource = request.match_info.route.resource
        if resource is not None:
            return resource.canonical
    return "unmatched"


def client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def log_unexpected(request: web.BaseRequest, exc: BaseException) -> None:
    """Log a defect with its traceback, masked (an exception message may quote input)."""
    log.error(
        "unexpected_error", route=route_of(request), method=request.method,
        error_type=type(exc).__name__, error=mask_text(str(exc))[:500],
        traceback=mask_text("".join(traceback.format_exception(exc))[-4000:]),
    )


def make_edge_errors(metrics: EdgeMetrics) -> Middleware:
    """The middleware: refusal of encoded bodies, problem+json for every error."""

    @web.middleware
    async def edge_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (refusal := encoding_refusal(request)) is not None:
            return refusal
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if (converted := _from_http_exception(exc)) is None:
                raise
            return converted
        except StoreUnavailable:
            raise  # request_context answers 503 with Retry-After
        except Exception as exc:
            if isinstance(exc, ConnectionError) and client_gone(request):
                raise  # the client left mid-request (or the edge cut it): no one to answer
            log_unexpected(request, exc)
            metrics.unexpected_errors.labels(route_of(request)).inc()
            return status_problem(500, "请求编号见 X-Request-Id (see the X-Request-Id header)")

    return edge_errors
