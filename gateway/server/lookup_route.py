"""The look-up by case code on the HTTP surface: ``POST /v1/lookup`` (JSON) and the page
``GET|POST /lookup`` (gateway/server/lookup_page.py), both public (no token: a citizen
asks), both answering through one ``LookupService`` (gateway/server/lookup.py).

``POST /v1/lookup`` answers 200 with the history, 404 ``no-match`` for every question
that matches nothing, 422 naming each malformed field, 413 for a body over
``LOOKUP_MAX_BYTES``, 429 with ``Retry-After`` past either rate limit.
"""

from __future__ import annotations

from aiohttp import web

from gateway.intake.openapi import (
    HTML,
    ApiPart,
    JsonObject,
    json_answer,
    obj,
    operation,
    path_param,
    problem_answers,
    query,
    string,
    text_answer,
)
from gateway.model.errors import Rejected
from gateway.model.input_limits import InputLimits
from gateway.ops.running import RunningGateway
from gateway.server import json_body
from gateway.server.api_access import json_answer as answer_json
from gateway.server.lookup import (
    LABELS,
    MAX_CODE_CHARS,
    MAX_EMAIL_CHARS,
    LookupService,
    no_match,
    parse_query,
)
from gateway.server.lookup_page import FORM_MAX_BYTES, PATH, STATIC, LookupPage
from gateway.support.config import GatewayConfig
from gateway.support.web_page import CSRF_FIELD

LOOKUP_MAX_BYTES = 4096
LOOKUP_LIMITS = InputLimits(max_json_depth=2, max_json_items=16)
API_PATH = "/v1/lookup"


def service_of(gateway: RunningGateway) -> LookupService:
    config = gateway.config
    keys = gateway.intake.identifier_keys or config.privacy.keys(config.data_dir)
    return LookupService(config.lookup, gateway.store, keys, config.tz, config.region_code,
                         gateway.intake.buckets)


def routes(gateway: RunningGateway) -> list[web.RouteDef]:
    """The API and the page; none when ``lookup.enabled`` is false."""
    if not gateway.config.lookup.enabled:
        return []
    service = service_of(gateway)

    async def api(request: web.Request) -> web.Response:
        refused = service.client_refusal(request)
        if refused is not None:
            return refused
        try:
            question = parse_query(await json_body.read_json(
                request, LOOKUP_MAX_BYTES, LOOKUP_LIMITS), service.region)
        except Rejected as exc:
            return json_body.refusal(exc.errors)
        refused = service.code_refusal(question)
        if refused is not None:
            return refused
        found = await service.find(question)
        return no_match() if found is None else answer_json(found.as_json())

    return [web.post(API_PATH, api), *LookupPage(service, gateway.config.lookup).routes()]


CODE_EXAMPLE = "CY-20191120-W-000123-7"
HISTORY_ENTRY = obj({
    "status": {"enum": list(LABELS)}, "label_zh": string(), "label_en": string(),
    "at": string(format="date-time"), "department": {"type": ["string", "null"]},
}, ["status", "label_zh", "label_en", "at", "department"])
ANSWER = obj({
    "case_code": string(), "received_at": string(format="date-time"),
    "channel": {"enum": ["phone", "web", "email", "opinion"]},
    "channel_zh": string(), "channel_en": string(),
    "status_history": {"type": "array", "items": HISTORY_ENTRY, "minItems": 1},
}, ["case_code", "received_at", "channel", "status_history"])


def openapi_part(config: GatewayConfig) -> ApiPart:
    """The look-up's operations, for ``GET /openapi.json``."""
    part = ApiPart()
    if not config.lookup.enabled:
        return part
    question = {
        "case_code": string(MAX_CODE_CHARS, description=f"e.g. {CODE_EXAMPLE}"),
        "phone_last4": string(4, pattern="^[0-9]{4}$",
                              description="the last four digits of the phone number"),
        "email": string(MAX_EMAIL_CHARS, description="the e-mail address, instead"),
    }
    by_phone = obj({k: question[k] for k in ("case_code", "phone_last4")},
                   ["case_code", "phone_last4"], additionalProperties=False)
    by_email = obj({k: question[k] for k in ("case_code", "email")},
                   ["case_code", "email"], additionalProperties=False)
    body: JsonObject = {"oneOf": [by_phone, by_email]}
    part.add(API_PATH, "post", operation(
        "A case's status history by its code and the last four digits of its phone number "
        "(or its e-mail address); nothing personal (docs/citizen.md)", ["citizen"],
        {"200": json_answer("the case matched: its history", ANSWER),
         **problem_answers(404, 413, 422, 429, 503)},
        requestBody={"required": True, "content": {"application/json": {"schema": body}}}))
    page = {"200": text_answer("the page", HTML)}
    part.add(PATH, "get", operation(
        "The look-up page (docs/citizen.md)", ["citizen"], {**page, **problem_answers()},
        parameters=[query("case_code", string(MAX_CODE_CHARS), "prefills the code")]))
    form = obj({CSRF_FIELD: string(), **question})
    html_answers = {status: text_answer(meaning, HTML) for status, meaning in (
        ("200", "the history"), ("403", "the form again: the page expired"),
        ("404", "the form again with the one message of every question that matches "
                "nothing"),
        ("422", "the form again, each error beside its field"),
        ("429", "too many look-ups: try later (Retry-After)"))}
    part.add(PATH, "post", operation(
        f"The look-up page's plain form post (at most {FORM_MAX_BYTES} bytes), answered "
        "with HTML", ["citizen"], {**html_answers, **problem_answers(413, 503)},
        requestBody={"required": False, "content": {
            "application/x-www-form-urlencoded": {"schema": form}}}))
    static = {"200": {"description": "a file of the page", "content": {
        media: {"schema": {"type": "string"}} for media in ("text/css", "text/javascript")}},
        **problem_answers(404)}
    part.add(STATIC + "/{name}", "get", operation(
        "The look-up page's own files", ["citizen"], static,
        parameters=[path_param("name", "a file name, e.g. lookup.js")]))
    return part
