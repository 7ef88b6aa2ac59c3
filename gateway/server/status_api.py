"""The status API (docs/downstream.md): the case platform tells the gateway what became of
a case (``POST /v1/cases/{case_code}/status``), and ``GET /v1/cases/{case_code}`` shows
the history beside the document.

The body is small and hostile input like any other: read up to ``STATUS_MAX_BYTES`` and
parsed by the strict JSON reader within ``STATUS_LIMITS`` (no NaN, no duplicate keys, no
lone surrogates, shallow), then checked by ``gateway.model.case_status``.
"""

from __future__ import annotations

import json

from aiohttp import web

from gateway.intake.body_budget import read_bounded
from gateway.model import strict_json
from gateway.model.case_status import parse_update
from gateway.model.errors import FieldError, Rejected
from gateway.model.input_limits import InputLimits
from gateway.server.api_access import api_view, authorized, gateway_of, json_answer
from gateway.store import Tx, cases, statuses
from gateway.support import problem
from gateway.support.logging import get_logger

log = get_logger("gateway.status_api")
STATUS_MAX_BYTES = 64 * 1024
STATUS_LIMITS = InputLimits(max_json_depth=4, max_json_items=64)


def _not_found(code: str) -> web.Response:
    return problem.problem(404, "not-found", "未找到该案件 (no such case)", code[:64])


async def _read_json(request: web.Request) -> object:
    """The body as strict JSON; ``Rejected`` naming ``body`` when it is too big or not
    JSON at all."""
    body = await read_bounded(request, STATUS_MAX_BYTES)
    if body is None:
        raise Rejected.one("body", "too_large", f"请求体超过 {STATUS_MAX_BYTES} 字节",
                           f"the body exceeds {STATUS_MAX_BYTES} bytes")
    try:
        return strict_json.loads(body.decode("utf-8"), STATUS_LIMITS)
    except (UnicodeDecodeError, ValueError):
        raise Rejected.one("body", "not_json", "请求体必须是 UTF-8 编码的 JSON 对象",
                           "the body must be a JSON object in UTF-8") from None


async def post_status(request: web.Request) -> web.Response:
    """Add one status to a case's history: 201 with the new entry, 200 with the stored
    entry when the same (case, status, time) came before, 404 for an unknown case."""
    if (refusal := authorized(request)) is not None:
        return refusal
    code = request.match_info["case_code"].upper()
    try:
        update = parse_update(await _read_json(request))
    except Rejected as exc:
        return _refusal(exc.errors)
    found = await gateway_of(request).store.write(
        lambda tx: statuses.record_for_code(tx, code, update, "api"))
    if found is None:
        return _not_found(code)
    entry, created = found
    log.info("case_status", case_code=code, status=entry.status, created=created)
    return json_answer({"case_code": code, **entry.as_json()}, 201 if created else 200)


def _refusal(errors: list[FieldError]) -> web.Response:
    if any(e.code == "too_large" for e in errors):
        return problem.problem(413, "too-large", "请求体过大 (request body too large)",
                               f"{errors[0].zh} / {errors[0].en}", errors)
    return problem.rejected(errors)


async def get_case(request: web.Request) -> web.Response:
    """The complaint document as stored, with ``status_history`` added at its end: the
    document's own bytes are not touched (its members, their order, its signature input
    stay what the sinks received), except that a confidential case's reporter is masked
    unless ``api.confidential`` is ``full``."""
    if (refusal := authorized(request)) is not None:
        return refusal
    code = request.match_info["case_code"].upper()

    def read(tx: Tx) -> tuple[str, list[statuses.StatusEntry]] | None:
        row = cases.get_by_code(tx, code)
        return None if row is None else (row.document, statuses.history(tx, code))

    found = await gateway_of(request).store.read(read)
    if found is None:
        return _not_found(code)
    document, history = api_view(request, found[0]), found[1]
    entries = json.dumps([e.as_json() for e in history], ensure_ascii=False)
    body = f'{document.rstrip()[:-1]},"status_history":{entries}}}'
    return web.Response(text=body, content_type="application/json")
