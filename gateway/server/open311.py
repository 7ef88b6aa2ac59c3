"""Open311 GeoReport v2, the read side: city apps list the services
(``GET /open311/v2/services.json``, from the ``open311:`` config block) and look a case up
the standard way (``GET /open311/v2/requests/{case_code}.json``, an array of one service
request, as the spec has it). docs/downstream.md maps the fields.

Open like the spec's GET methods (no api_key), so a service request says nothing a
stranger may not read: no citizen's words (``description``), no address or coordinates,
no reporter; ``status_notes`` is the gateway's own fixed wording of the latest status,
never the platform's free text (a reply may name the citizen). Refusals are
problem+json like every route of the gateway, not the spec's error array.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.model.case_status import CaseStatus
from gateway.server.api_access import gateway_of, json_answer, log_access
from gateway.store import Tx, cases, statuses
from gateway.store.audit import ACTOR_PUBLIC, AuditAction
from gateway.store.statuses import StatusEntry
from gateway.support import problem
from gateway.support.open311_config import Open311Config

NOTES: dict[CaseStatus, str] = {
    "accepted": "已受理 (accepted)",
    "assigned": "已分派至{department} (assigned to {department})",
    "replied": "已答复 (replied)",
    "closed": "已办结 (closed)",
    "reopened": "已重新办理 (reopened)",
}
RECEIVED_NOTE = "已登记，等待受理 (received, waiting to be accepted)"


def _config(request: web.Request) -> Open311Config:
    config = gateway_of(request).config.open311
    assert config is not None  # the routes exist only with the block
    return config


def _wrong_jurisdiction(request: web.Request, config: Open311Config) -> web.Response | None:
    asked = request.query.get("jurisdiction_id")
    if asked is None or config.jurisdiction_id is None or asked == config.jurisdiction_id:
        return None
    return problem.problem(404, "unknown-jurisdiction", "未知的辖区 (unknown jurisdiction)",
                           "jurisdiction_id: this endpoint serves "
                           f"{config.jurisdiction_id!r} only")


async def services(request: web.Request) -> web.Response:
    config = _config(request)
    if (refusal := _wrong_jurisdiction(request, config)) is not None:
        return refusal
    return json_answer([
        {"service_code": s.code, "service_name": s.name, "description": s.description,
         "metadata": False, "type": "realtime", "keywords": ",".join(s.keywords),
         "group": s.group or ""}
        for s in config.services])


async def service_request(request: web.Request) -> web.Response:
    config = _config(request)
    if (refusal := _wrong_jurisdiction(request, config)) is not None:
        return refusal
    code = request.match_info["case_code"].upper()

    def read(tx: Tx) -> tuple[str, list[StatusEntry]] | None:
        row = cases.get_by_code(tx, code)
        return None if row is None else (row.document, statuses.history(tx, code))

    found = await gateway_of(request).store.read(read)
    await log_access(request, AuditAction.OPEN311_READ, code[:64], {"found": found is not None},
                     actor=ACTOR_PUBLIC)
    if found is None:
        return problem.problem(404, "not-found", "未找到该案件 (no such case)", code[:64])
    document, history = found
    return json_answer([as_service_request(json.loads(document), history, config)])


def as_service_request(document: dict[str, Any], history: list[StatusEntry],
                       config: Open311Config) -> dict[str, Any]:
    """One case as a GeoReport v2 service request, without personal data."""
    latest = history[-1] if history else None
    department = next((e.department for e in reversed(history) if e.department), None)
    service = config.service_for(_categories(document, history))
    return {
        "service_request_id": document["case_code"],
        "status": "closed" if latest is not None and latest.status == "closed" else "open",
        "status_notes": _note(latest, department),
        "service_name": service.name if service else None,
        "service_code": service.code if service else None,
        "agency_responsible": department,
        "requested_datetime": document.get("received_at"),
        "updated_datetime": latest.at_text if latest else document.get("received_at"),
        "expected_datetime": document.get("due_at"),
    }


def _note(latest: StatusEntry | None, department: str | None) -> str:
    if latest is None:
        return RECEIVED_NOTE
    return NOTES[latest.status].format(department=department or "—")


def _categories(document: dict[str, Any], history: list[StatusEntry]) -> list[str]:
    """The case's categories, the platform's final one first: the latest category a
    status carried, the classification's code and class names, the form's hint."""
    found: list[Any] = [e.category for e in reversed(history) if e.category][:1]
    classification = document.get("classification") or {}
    found += [classification.get("code"), *(classification.get("path") or [])]
    found.append(document.get("category_hint"))
    return [str(c) for c in found if c]


def routes() -> list[web.RouteDef]:
    return [web.get("/open311/v2/services.json", services),
            web.get("/open311/v2/requests/{case_code}.json", service_request)]
