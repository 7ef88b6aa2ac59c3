"""RFC 9457 problem details, in Chinese with English beside it."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.model.errors import FieldError

PROBLEM_TYPE = "application/problem+json"
_BASE = "https://minsheng.invalid/problems/"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    errors: list[FieldError] | None = None,
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {"type": _BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    body.update(extra)
    return web.Response(
        status=status,
        # A detail may quote the request (a path, a header) and so hold a lone surrogate,
        # which UTF-8 cannot encode: it is written as its JSON escape (\udcff) instead.
        body=json.dumps(body, ensure_ascii=False).encode("utf-8", "backslashreplace"),
        content_type=PROBLEM_TYPE,
        charset="utf-8",
    )


def rejected(errors: list[FieldError], **extra: Any) -> web.Response:
    return problem(
        422, "validation", "提交内容不符合规范 (the submission breaks the standard)",
        "；".join(f"{e.field}: {e.zh}" for e in errors) + " / "
        + "; ".join(f"{e.field}: {e.en}" for e in errors),
        errors, **extra,
    )


def unauthorized(detail_en: str = "missing or wrong credentials") -> web.Response:
    return problem(401, "unauthorized", "未授权 (unauthorized)", detail_en)


def too_large(limit_bytes: int, key: str = "max_body_kb") -> web.Response:
    """413 naming the limit and the config key that sets it."""
    error = FieldError("body", "too_large", f"请求体超过 {limit_bytes} 字节 ({key})",
                       f"the body exceeds {limit_bytes} bytes ({key})")
    return problem(413, "too-large", "请求体过大 (request body too large)",
                   f"{error.zh} / {error.en}", [error])
