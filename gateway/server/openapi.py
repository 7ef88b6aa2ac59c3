"""The gateway's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Routes depend on the configured sources (a hotline with a path token has a ``{token}``
segment, a source named ``web`` lives at ``/intake/web``), so the document is built from
the running gateway, not written by hand: the core contributes its own routes here and
every adapter contributes its operations through ``Adapter.openapi()`` (built with
gateway/intake/openapi.py). A test keeps the document and the aiohttp router equal, route
for route, and validates it as OpenAPI 3.1; the fuzzers (tests/test_fuzz_*.py) generate
requests from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.intake.openapi import (
    HTML,
    OPENAPI_VERSION,
    PROBLEM,
    ApiPart,
    JsonObject,
    bearer_scheme,
    json_answer,
    obj,
    operation,
    path_param,
    problem_answers,
    query,
    string,
    text_answer,
)
from gateway.server import attachment_route, lookup_route

if TYPE_CHECKING:
    from gateway.ops.running import RunningGateway
    from gateway.support.config import GatewayConfig


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
        "Complaints in commit order after a cursor (docs/downstream.md)", ["feed"],
        {"200": json_answer("a page of the feed", feed), **problem_answers(401, 403, 422, 503)},
        scheme=scheme, parameters=[
            query("after", {"type": "integer", "minimum": 0, "maximum": 2**62},
                  "the cursor: `next_cursor` of the previous page (default 0)"),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 500},
                  "at most this many cases (default 100)")]))
    case = {"type": "object", "properties": {
        "status_history": {"type": "array", "items": STATUS_ENTRY}}}
    part.add("/v1/cases/{case_code}", "get", operation(
        "One complaint by its case code, with its status history", ["feed"],
        {"200": json_answer("the complaint document, `status_history` added", case),
         **problem_answers(401, 403, 404, 503)},
        scheme=scheme, parameters=[path_param("case_code", "e.g. CY-20191120-W-000123-7")]))
    _status_api(part, scheme)


STATUSES = ["accepted", "assigned", "replied", "closed", "reopened"]
STATUS_ENTRY = obj({
    "status": {"enum": STATUSES}, "at": string(format="date-time"),
    "department": {"type": ["string", "null"]}, "text": {"type": ["string", "null"]},
    "category": {"type": ["string", "null"]}, "origin": {"enum": ["api", "import"]},
}, ["status", "at"])


def _status_api(part: ApiPart, scheme: str | None) -> None:
    """``POST /v1/cases/{case_code}/status`` (gateway/server/status_api.py)."""
    update = obj({
        "status": {"enum": STATUSES},
        "at": string(format="date-time", description="with its UTC offset"),
        "department": string(200, description="required with `assigned`"),
        "text": string(10_000, description="required with `replied`"),
        "category": string(200, description="the platform's final category"),
    }, ["status", "at"], additionalProperties=False)
    entry = obj({"case_code": string(), **STATUS_ENTRY["properties"]},
                ["case_code", "status", "at"])
    part.add("/v1/cases/{case_code}/status", "post", operation(
        "Add a status the case platform sends back (docs/downstream.md)", ["status"],
        {"201": json_answer("a new entry of the history", entry),
         "200": json_answer("the same (case, status, at) came before: the stored entry",
                            entry),
         **problem_answers(401, 403, 404, 413, 422, 503)},
        scheme=scheme,
        parameters=[path_param("case_code", "e.g. CY-20191120-W-000123-7")],
        requestBody={"required": True, "content": {"application/json": {"schema": update}}}))


def _open311(part: ApiPart, config: GatewayConfig) -> None:
    """The Open311 GeoReport v2 read side (gateway/server/open311.py), open as the spec's
    GET methods are."""
    if config.open311 is None:
        return
    jurisdiction = query("jurisdiction_id", string(), "optional; another one is a 404")
    service = obj({"service_code": string(), "service_name": string(),
                   "description": string(), "metadata": {"type": "boolean"},
                   "type": {"enum": ["realtime", "batch", "blackbox"]},
                   "keywords": string(), "group": string()},
                  ["service_code", "service_name", "metadata", "type"])
    part.add("/open311/v2/services.json", "get", operation(
        "Open311 GeoReport v2: the services", ["open311"],
        {"200": json_answer("the services", {"type": "array", "items": service}),
         **problem_answers(404)}, parameters=[jurisdiction]))
    nullable = {"type": ["string", "null"]}
    request = obj({"service_request_id": string(), "status": {"enum": ["open", "closed"]},
                   "status_notes": string(), "service_name": nullable,
                   "service_code": nullable, "agency_responsible": nullable,
                   "requested_datetime": nullable, "updated_datetime": nullable,
                   "expected_datetime": nullable},
                  ["service_request_id", "status"])
    part.add("/open311/v2/requests/{case_code}.json", "get", operation(
        "Open311 GeoReport v2: one service request (a case), no personal data", ["open311"],
        {"200": json_answer("an array of one service request",
                            {"type": "array", "items": request, "minItems": 1, "maxItems": 1}),
         **problem_answers(404, 503)},
        parameters=[path_param("case_code", "the case code, e.g. CY-20191120-W-000123-7"),
                    jurisdiction]))


def _ops(part: ApiPart, config: GatewayConfig) -> None:
    """/metrics and /v1/status (gateway/ops/routes.py), behind the operator token when set."""
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
    part.merge(attachment_route.openapi_part(config))
    part.merge(lookup_route.openapi_part(config))
    _ops(part, config)
    _ops_page(part)
    _open311(part, config)
    return part


def build_document(gateway: RunningGateway) -> JsonObject:
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


def setup(app: web.Application, gateway: RunningGateway) -> None:
    """Serve the document at ``GET /openapi.json`` (built once, on first request)."""

    built: list[JsonObject] = []

    async def serve(request: web.Request) -> web.Response:
        if not built:
            built.append(build_document(gateway))
        return web.json_response(built[0])

    app.router.add_get("/openapi.json", serve)
