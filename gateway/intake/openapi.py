"""The building blocks of the OpenAPI 3.1 document (``GET /openapi.json``).

Every adapter describes its own operations through ``Adapter.openapi()`` with these
helpers (problem answers, JSON bodies, bearer schemes), and the server adds the core's
routes and assembles the document (gateway/server/openapi.py). They live here, in the
intake layer, because adapters use them and adapters may not import the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.support.problem import PROBLEM_TYPE

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
