"""The gateway's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Routes depend on the configured sources (a hotline with a path token has a ``{token}``
segment, a source named ``web`` lives at ``/intake/web``), so the document is built from
the running gateway, not written by hand: the core contributes its own routes here and
every adapter contributes its operations through ``Adapter.openapi()``. A test keeps the
document and the aiohttp router equal, route for route, and validates it as OpenAPI 3.1;
the fuzzers (tests/test_fuzz_*.py) generate requests from it.

The helpers below (problem answers, JSON bodies, bearer schemes) are what adapters use
to describe their own operations the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.problem import PROBLEM_TYPE

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.config import GatewayConfig

JsonObject = dict[str, Any]
OPENAPI_VERSION = "3.1.0"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
HTML = "text/html"

# What each refusal means, for the description of a documented problem answer.
PROBLEM_MEANING = {
    400: "the request is malformed (problem+json naming what)",
    401: "missing or wrong credentials",
    403: "forbidden (disabled, loopback only, or a stale signature)",
    404: "no such resource",
    413: "the body is over the source's size limit",
    415: "the request's Content-Encoding or media type is not accepted",
    422: "a field or parameter breaks the rules; `errors` names each, in Chinese and English",
    429: "too many requests (the rate limit, or request bodies in flight); retry after "
         "Retry-After",
    503: "the store is unavailable: nothing was taken, retry",
}


@dataclass
class ApiPart:
    """What one contributor (the core, an adapter) adds to the document."""

    paths: dict[str, JsonObject] = field(default_factory=dict)
    security_schemes: dict[str, JsonObject] = field(default_factory=dict)

    def add(self, path: str, method: str, operation: JsonObject) -> None:
        self.paths.setdefault(path, {})[method] = operation

    def merge(self, other: ApiPart) -> None:
        for path, item in other.paths.items():
            self.paths.setdefault(path, {}).update(item)
        self.security_schemes.update(other.security_schemes)


# -- building blocks ---------------------------------------------------------------------

def problem_answers(*statuses: int) -> dict[str, JsonObject]:
    """problem+json answers for ``statuses``, plus any other 4xx (every refusal of the
    gateway is a problem+json, whatever its status)."""
    answers = {str(s): {"description": PROBLEM_MEANING[s],
                        "content": {PROBLEM_TYPE: {"schema": PROBLEM_REF}}} for s in statuses}
    answers["4XX"] = {"description": "another refusal, as problem+json",
                      "content": {PROBLEM_TYPE: {"schema": PROBLEM_REF}}}
    return answers


def json_answer(description: str, schema: JsonObject) -> JsonObject:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def text_answer(description: str, media_type: str) -> JsonObject:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def string(max_length: int | None = None, **extra: Any) -> JsonObject:
    schema: JsonObject = {"type": "string", **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def obj(properties: dict[str, JsonObject], required: list[str] | None = None,
        **extra: Any) -> JsonObject:
    """An object schema; unknown members are allowed (the gateway ignores them)."""
    schema: JsonObject = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = required
    return schema


def query(name: str, schema: JsonObject, description: str) -> JsonObject:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def path_param(name: str, description: str, schema: JsonObject | None = None) -> JsonObject:
    return {"name": name, "in": "path", "required": True,
            "schema": schema or string(minLength=1), "description": description}


def bearer_scheme(description: str) -> JsonObject:
    return {"type": "http", "scheme": "bearer", "description": description}


def security(scheme: str | None) -> list[JsonObject]:
    """The ``security`` of an operation: the named scheme, or none (open)."""
    return [{scheme: []}] if scheme else []


def operation(summary: str, tags: list[str], responses: JsonObject, *,
              scheme: str | None = None, **extra: Any) -> JsonObject:
    return {"summary": summary, "tags": tags, "security": security(scheme),
            "responses": responses, **extra}


# -- the shared components ---------------------------------------------------------------

FIELD_ERROR = obj({
    "field": string(description="the field or limit, e.g. `content`, `body`"),
    "code": string(description="a stable code, e.g. `required`, `too_large`"),
    "zh": string(), "en": string(),
    "reason": string(description="`zh (en)`"),
}, ["field", "reason"])

PROBLEM = obj({
    "type": string(format="uri"),
    "title": string(description="Chinese with English beside it"),
    "status": {"type": "integer", "minimum": 400, "maximum": 599},
    "detail": string(),
    "errors": {"type": "array", "items": FIELD_ERROR},
}, ["type", "title"], description="RFC 9457 problem details (application/problem+json)")


# -- the core's own routes ---------------------------------------------------------------

def _health(part: ApiPart) -> None:
    part.add("/healthz", "get", operation(
        "Liveness: the process answers", ["health"],
        {"200": json_answer("alive", obj({"status": {"const": "alive"}}, ["status"])),
         **problem_answers()}))
    ready = obj({"status": string(), "started": {"type": "boolean"}, "store": string(),
                 "sources": {"type": "object"}, "critical_down": {"type": "array"}},
                ["status"])
    part.add("/readyz", "get", operation(
        "Readiness: the store answers and no critical source is down", ["health"],
        {"200": json_answer("ready", ready), "503": json_answer("not ready (yet)", ready),
         **problem_answers()}))
    part.add("/openapi.json", "get", operation(
        "This document", ["health"],
        {"200": json_answer("OpenAPI 3.1", {"type": "object"}), **problem_answers()}))


def _pull_feed(part: ApiPart, config: GatewayConfig) -> None:
    scheme = "apiToken" if config.api.token is not None else None
    if scheme:
        part.security_schemes[scheme] = bearer_scheme("api.token: the pull feed's token")
    feed = obj({"cases": {"type": "array", "items": {"type": "object"}},
                "next_cursor": string(pattern="^[0-9]+$"), "has_more": {"type": "boolean"}},
               ["cases", "next_cursor", "has_more"])
    part.add("/v1/cases", "get", operation(
        "Complaints in commit order after a cursor (docs/pull-feed.md)", ["feed"],
        {"200": json_answer("a page of the feed", feed), **problem_answers(401, 403, 422, 503)},
        scheme=scheme, parameters=[
            query("after", {"type": "integer", "minimum": 0, "maximum": 2**62},
                  "the cursor: `next_cursor` of the previous page (default 0)"),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 500},
                  "at most this many cases (default 100)")]))
    part.add("/v1/cases/{case_code}", "get", operation(
        "One complaint by its case code", ["feed"],
        {"200": json_answer("the complaint document", {"type": "object"}),
         **problem_answers(401, 403, 404, 503)},
        scheme=scheme, parameters=[path_param("case_code", "e.g. CY-20191120-W-000123-7")]))


def _ops(part: ApiPart, config: GatewayConfig) -> None:
    """/metrics and /v1/status (gateway/ops.py), behind the operator token when set."""
    scheme = None
    if config.ops.token is not None:
        scheme = "opsToken"
        part.security_schemes[scheme] = bearer_scheme(
            "ops.token (the status page also takes its cookie, set by POST /ops/login)")
    guarded = problem_answers(401, 403)
    part.add("/metrics", "get", operation(
        "Prometheus metrics (docs/operations-metrics.md)", ["operations"],
        {"200": text_answer("the exposition format", "text/plain"), **guarded}, scheme=scheme))
    part.add("/v1/status", "get", operation(
        "The status document behind the status page", ["operations"],
        {"200": json_answer("sources, sinks, backlog, quarantine, volumes", {"type": "object"}),
         **guarded}, scheme=scheme))


def _ops_page(part: ApiPart) -> None:
    """The status page, its login and its files: open routes that check the token (or
    cookie) themselves and answer a person with HTML."""
    login_page = text_answer("the login page (wrong or missing token)", HTML)
    redirect = {"description": "to /ops, with the page's cookie set when the token is right",
                "headers": {"Location": {"schema": string()}}}
    part.add("/ops", "get", operation(
        "The status page", ["operations"],
        {"200": text_answer("the page", HTML), "303": redirect, "401": login_page,
         **problem_answers(403)},
        parameters=[query("token", string(), "a kiosk URL's token: set as a cookie, then "
                                             "redirected to /ops without it")]))
    form = {"application/x-www-form-urlencoded": {"schema": obj({"token": string()})}}
    part.add("/ops/login", "post", operation(
        "Log in to the status page with the operator token", ["operations"],
        {"303": redirect, "401": login_page, **problem_answers(403)},
        requestBody={"required": False, "content": form}))
    static = {"200": {"description": "a file of the page", "content": {
        media: {"schema": {"type": "string"}}
        for media in ("text/css", "text/javascript", "image/svg+xml", HTML)}},
        **problem_answers(404)}
    part.add("/ops/static/{name}", "get", operation(
        "The status page's own files", ["operations"], static,
        parameters=[path_param("name", "a file name, e.g. ops.css")]))


def core_part(config: GatewayConfig) -> ApiPart:
    part = ApiPart()
    _health(part)
    _pull_feed(part, config)
    _ops(part, config)
    _ops_page(part)
    return part


def build_document(gateway: Gateway) -> JsonObject:
    """The whole document: the core's routes and each enabled adapter's."""
    part = core_part(gateway.config)
    for adapter in gateway.adapters.values():
        part.merge(adapter.openapi())
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Minsheng Gateway (民声网关)", "version": _version(),
                 "description": "The single intake point of a 12345 citizen-service "
                                "hotline. Every refusal is application/problem+json "
                                "in Chinese with English beside it."},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(part.paths.items())),
        "components": {"schemas": {"Problem": PROBLEM},
                       "securitySchemes": part.security_schemes},
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("minsheng-gateway")
    except PackageNotFoundError:
        return "0"


def setup(app: web.Application, gateway: Gateway) -> None:
    """Serve the document at ``GET /openapi.json`` (built once, on first request)."""

    built: list[JsonObject] = []

    async def serve(request: web.Request) -> web.Response:
        if not built:
            built.append(build_document(gateway))
        return web.json_response(built[0])

    app.router.add_get("/openapi.json", serve)
