"""What every route of the case API shares: the running gateway behind a request, the
bearer check of ``api.token`` (the pull feed, the status API, the case look-up), the
access log entry of each read, what a case document shows (``api.confidential``) and
the JSON answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.ops.running import RunningGateway
from gateway.store import audit
from gateway.support import problem
from gateway.support.confidential import mask_json
from gateway.support.tokens import bearer_ok

GATEWAY_KEY = web.AppKey("gateway", object)


def gateway_of(request: web.Request) -> RunningGateway:
    return request.app[GATEWAY_KEY]  # type: ignore[return-value]


def json_answer(value: object, status: int = 200) -> web.Response:
    """``value`` as JSON with Chinese kept readable (not ``\\uXXXX``)."""
    return web.json_response(value, status=status,
                             dumps=lambda v: json.dumps(v, ensure_ascii=False))


def authorized(request: web.Request) -> web.Response | None:
    """None when the request carries ``api.token``; else the refusal to answer."""
    token = gateway_of(request).config.api.token
    if token is None:
        return problem.problem(
            403, "api-disabled", "拉取接口未启用 (pull API disabled)",
            "set api.token in the config (e.g. token: ${MINSHENG_API_TOKEN})",
        )
    if not bearer_ok(request, token.get_secret_value()):
        return problem.unauthorized("a valid 'Authorization: Bearer <token>' is required")
    return None


async def log_access(request: web.Request, action: audit.AuditAction, target: str,
                     detail: Mapping[str, Any] | None = None,
                     actor: str = audit.ACTOR_API) -> None:
    """Append the read to the access log (gateway/store/audit.py) through the group-commit
    writer, before the answer leaves: an answered read is a logged read. ``actor``: the
    token's name (one ``api.token`` today: ``api``)."""
    await gateway_of(request).store.write(
        lambda tx: audit.record(tx, actor, action, target, detail))


def api_view(request: web.Request, document: str) -> str:
    """A stored case document as the case API shows it: a confidential case's reporter
    masked unless ``api.confidential`` is ``full``."""
    if gateway_of(request).config.api.confidential == "full":
        return document
    return mask_json(document)
