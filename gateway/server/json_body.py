"""Small JSON bodies of the core's own routes (the status API, the look-up): read up to a
byte limit and parsed by the strict JSON reader within shape limits (no NaN, no duplicate
keys, no lone surrogates, shallow), every refusal naming ``body``."""

from __future__ import annotations

from aiohttp import web

from gateway.intake.body_budget import read_bounded
from gateway.model import strict_json
from gateway.model.errors import FieldError, Rejected
from gateway.model.input_limits import InputLimits
from gateway.support import problem


async def read_json(request: web.Request, max_bytes: int, limits: InputLimits) -> object:
    """The body as strict JSON; ``Rejected`` naming ``body`` when it is too big or not
    JSON at all."""
    body = await read_bounded(request, max_bytes)
    if body is None:
        raise Rejected.one("body", "too_large", f"请求体超过 {max_bytes} 字节",
                           f"the body exceeds {max_bytes} bytes")
    try:
        return strict_json.loads(body.decode("utf-8"), limits)
    except (UnicodeDecodeError, ValueError):
        raise Rejected.one("body", "not_json", "请求体必须是 UTF-8 编码的 JSON 对象",
                           "the body must be a JSON object in UTF-8") from None


def refusal(errors: list[FieldError]) -> web.Response:
    """413 when the body was too big, else 422 naming every field."""
    if any(e.code == "too_large" for e in errors):
        return problem.problem(413, "too-large", "请求体过大 (request body too large)",
                               f"{errors[0].zh} / {errors[0].en}", errors)
    return problem.rejected(errors)
