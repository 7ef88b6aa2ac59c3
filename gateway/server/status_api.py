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

from gateway.model.case_status import parse_update
from gateway.model.errors import Rejected
from gateway.model.input_limits import InputLimits
from gateway.server import json_body
from gateway.server.api_access import api_view, authorized, gateway_of, json_answer, log_access
from gateway.store import Tx, cases, statuses
from gateway.store.audit import AuditAction
from gateway.support import problem
from gateway.support.logging import get_logger

log = get_logger("gateway.status_api")
STATUS_MAX_BYTES = 64 * 1024
STATUS_LIMITS = InputLimits(max_json_depth=4, max_json_items=64)


def _not_found(code: str) -> web.Response:
    return problem.problem(404, "not-found", "未找到该案件 (no such case)", code[:64])


async def post_status(request: web.Request) -> web.Response:
    """Add one status to a case's history: 201 with the new entry, 200 with the stored
    entry when the same (case, status, time) came before, 404 for an unknown case."""
    if (refusal := authorized(request)) is not None:
        return refusal
    code = request.match_info["case_code"].upper()
    try:
        update = parse_update(await json_body.read_json(request, STATUS_MAX_BYTES,
                                                       STATUS_LIMITS))
    except Rejected as exc:
        return json_body.refusal(exc.errors)
    found = await gateway_of(request).store.write(
        lambda tx: statuses.record_for_code(tx, code, update, "api"))
    if found is None:
        return _not_found(code)
    entry, created = found
    log.info("case_status", case_code=code, status=entry.status, created=created)
    return json_answer({"case_code": code, **entry.as_json()}, 201 if created else 200)


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
    await log_access(request, AuditAction.CASE_READ, code[:64], {"found": found is not None})
    if found is None:
        return _not_found(code)
    document, history = api_view(request, found[0]), found[1]
    entries = json.dumps([e.as_json() for e in history], ensure_ascii=False)
    body = f'{document.rstrip()[:-1]},"status_history":{entries}}}'
    return web.Response(text=body, content_type="application/json")
