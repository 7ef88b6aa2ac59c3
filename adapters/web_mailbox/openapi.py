"""The web mailbox's operation in the gateway's OpenAPI document (gateway/intake/openapi.py).

One ``POST /intake/<source>`` taking the same fields as JSON, as an url-encoded form or
as multipart with file parts (docs/web-mailbox.md); the length limits and the accepted
attachment types are the source's configured ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.intake.openapi import (
    HTML,
    ApiPart,
    JsonObject,
    bearer_scheme,
    json_answer,
    obj,
    operation,
    path_param,
    problem_answers,
    string,
    text_answer,
)

if TYPE_CHECKING:
    from adapters.web_mailbox import WebMailboxOptions

FLAG = {"oneOf": [{"type": "boolean"},
                  {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no", "是", "否"]}]}
ANSWER = obj({
    "outcome": {"enum": ["new", "repeat", "related", "replay", "quarantined"]},
    "case_code": string(), "repeat_of": string(), "cluster_id": string(),
    "quarantine_id": {"type": "integer"},
}, ["outcome"])


def submission_fields(options: WebMailboxOptions, *, form: bool) -> dict[str, JsonObject]:
    """The form's fields; in a form (url-encoded, multipart) every value is text."""
    flag = string() if form else FLAG
    return {
        "content": string(options.max_content_chars, minLength=1,
                          description="the matter, plain text"),
        "phone": string(32, description="mainland mobile or landline with area code"),
        "email": string(254, description="an e-mail address (or give phone)"),
        "name": string(options.max_name_chars),
        "subject": string(options.max_subject_chars),
        "address": string(options.max_address_chars),
        "district_code": string(12), "category": string(100),
        "anonymous": flag, "reply_wanted": flag,
        "confidential": {**flag, "description": "keep the reporter's identity confidential "
                                                 "(default false)"},
        "submission_id": string(200, description="the form's own id: the same again is a "
                                                 "replay"),
        "submitted_at": string(format="date-time"),
    }


def request_body(options: WebMailboxOptions) -> JsonObject:
    files = {"type": "array", "maxItems": options.max_attachments,
             "items": {"type": "string", "contentMediaType": "application/octet-stream"}}
    multipart = obj({**submission_fields(options, form=True), "attachments": files},
                    ["content"])
    return {"required": True, "content": {
        "application/json": {"schema": obj(submission_fields(options, form=False),
                                           ["content"])},
        "application/x-www-form-urlencoded": {
            "schema": obj(submission_fields(options, form=True), ["content"])},
        "multipart/form-data": {
            "schema": multipart,
            "encoding": {"attachments": {"contentType": ", ".join(
                options.allowed_media_types)}}},
    }}


def _with_html(answers: dict[str, JsonObject]) -> dict[str, JsonObject]:
    """Each answer also as an HTML page: what the citizen page's posts get
    (adapters/web_mailbox/page.py)."""
    return {status: {**answer, "content": {**answer["content"], HTML: {
        "schema": {"type": "string"}}}} for status, answer in answers.items()}


def page_operations(api: ApiPart, name: str, page_path: str) -> None:
    """The citizen page and its style and script."""
    api.add(page_path, "get", operation(
        f"The citizen page of the {name} web mailbox (网上信箱), docs/web-mailbox.md",
        ["intake"], {"200": text_answer("the form, in Chinese with English beside", HTML),
                     **problem_answers()}))
    api.add(f"/intake/{name}/static/{{name}}", "get", operation(
        "The citizen page's style sheet and script", ["intake"],
        {"200": {"description": "the file", "content": {
            "text/css": {"schema": {"type": "string"}},
            "text/javascript": {"schema": {"type": "string"}}}},
         **problem_answers(404)},
        parameters=[path_param("name", "the file's name (page.css, page.js)")]))


def part(name: str, options: WebMailboxOptions) -> ApiPart:
    """The operations of the web mailbox source ``name``: the intake and, when the
    source serves it, the citizen page."""
    api = ApiPart()
    scheme = None
    if options.token is not None:
        scheme = f"{name}-token"
        api.security_schemes[scheme] = bearer_scheme(f"the {name} source's token")
    limited = {**problem_answers(429)["429"],
               "headers": {"Retry-After": {"schema": {"type": "integer"}}}}
    answers = {"202": json_answer("a new case (or one kept in the quarantine)", ANSWER),
               "200": json_answer("a replay: the first submission's case", ANSWER),
               **problem_answers(400, 401, 413, 415, 422, 503), "429": limited}
    if options.serves_page and options.page_path is not None:
        answers = _with_html({**answers, **problem_answers(403)})
        page_operations(api, name, options.page_path)
    api.add(f"/intake/{name}", "post", operation(
        "Submit a complaint from the web mailbox (网上信箱), docs/web-mailbox.md; a post "
        "of the citizen page (multipart, Accept preferring text/html) is answered in HTML",
        ["intake"], answers,
        scheme=scheme, requestBody=request_body(options),
        parameters=[{"name": "Idempotency-Key", "in": "header", "required": False,
                     "schema": string(200), "description": "the same key again is a replay"}]))
    return api
