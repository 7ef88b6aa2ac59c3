"""``GET /v1/attachments/{sha256}``: the bytes of an attachment a stored case lists.

Only digests some case lists are served (``gateway/store/attachment_index.py``): a blob
kept for a record that never became a case, or any other file under the data folder,
stays private. The answer is always a download (``Content-Disposition: attachment``,
``nosniff``), never rendered by a browser on the gateway's origin, whatever the citizen
uploaded. aiohttp's ``FileResponse`` streams the file and answers ``Range`` requests
(206 / 416) and conditional ones, so a platform can resume a large video.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

from gateway.intake.openapi import (
    ApiPart,
    operation,
    path_param,
    problem_answers,
    string,
)
from gateway.model.attachments import AttachmentStore, sanitize_file_name
from gateway.model.errors import FieldError
from gateway.ops.running import RunningGateway
from gateway.server.api_access import log_access
from gateway.store import attachment_index
from gateway.store.audit import AuditAction
from gateway.support import problem
from gateway.support.config import GatewayConfig

Refusal = Callable[[web.Request], web.Response | None]
SHA256_PATTERN = "^[0-9a-f]{64}$"
_SHA256 = re.compile(SHA256_PATTERN)
# type "/" subtype with optional parameters, nothing a header could be split with.
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}"
                         r"(\s*;\s*[A-Za-z0-9_.+-]{1,32}=[A-Za-z0-9_.+\"-]{1,64}){0,4}$")
FALLBACK_MEDIA_TYPE = "application/octet-stream"


def content_disposition(file_name: str) -> str:
    """``attachment`` with the sanitised name: an ASCII ``filename`` for old clients and,
    when the name is not plain ASCII, ``filename*`` in UTF-8 (RFC 6266, RFC 5987)."""
    name = sanitize_file_name(file_name)
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    ascii_name = ascii_name.replace('"', "_").replace("\\", "_")
    header = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


def safe_media_type(recorded: str) -> str:
    """The recorded media type when it is a plain ``type/subtype[; param=value]``,
    else ``application/octet-stream`` (it came from the citizen's upload)."""
    return recorded if _MEDIA_TYPE.match(recorded) else FALLBACK_MEDIA_TYPE


def _bad_digest() -> web.Response:
    error = FieldError("sha256", "pattern", "sha256 须为 64 位小写十六进制摘要",
                       "sha256 must be 64 lower-case hexadecimal digits")
    return problem.problem(422, "bad-parameter", "参数无效 (invalid parameter)",
                           f"{error.zh} / {error.en}", [error])


def unsatisfiable_range(request: web.Request, size: int) -> bool:
    """Whether ``FileResponse`` would answer 416 (a ``Range`` it cannot parse, or one
    starting past the end): answered here instead, as problem+json like every refusal.
    With ``If-Range`` the range may be ignored, so it is left to ``FileResponse``."""
    if "Range" not in request.headers or "If-Range" in request.headers:
        return False
    try:
        start = request.http_range.start
    except ValueError:
        return True
    return start is not None and start >= size


def _range_refused(size: int) -> web.Response:
    error = FieldError("Range", "unsatisfiable", f"请求的范围超出附件大小 {size} 字节",
                       f"the range is not within the attachment's {size} bytes")
    response = problem.problem(416, "range-not-satisfiable",
                               "范围无法满足 (range not satisfiable)",
                               f"{error.zh} / {error.en}", [error])
    response.headers["Content-Range"] = f"bytes */{size}"
    return response


def _not_found(digest: str) -> web.Response:
    return problem.problem(404, "not-found",
                           "未找到该附件 (no attachment of a stored case has this digest)",
                           digest)


def routes(gateway: RunningGateway, refusal: Refusal) -> list[web.RouteDef]:
    """The route, checking the pull API's bearer token with ``refusal`` (shared with the
    pull feed, so both answer the same 401/403)."""
    files = AttachmentStore(gateway.config.attachments_dir)

    async def get_attachment(request: web.Request) -> web.StreamResponse:
        if (refused := refusal(request)) is not None:
            return refused
        digest = request.match_info["sha256"]
        if not _SHA256.match(digest):
            return _bad_digest()
        found = await gateway.store.read(lambda tx: attachment_index.find(tx, digest))
        path = files.path_of(digest)
        await log_access(request, AuditAction.ATTACHMENT_READ, digest,
                         {"found": found is not None and path.is_file()})
        if found is None or not path.is_file():
            return _not_found(digest)
        if unsatisfiable_range(request, size := path.stat().st_size):
            return _range_refused(size)
        return web.FileResponse(path, headers={
            "Content-Type": safe_media_type(found.media_type),
            "Content-Disposition": content_disposition(found.file_name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        })

    return [web.get("/v1/attachments/{sha256}", get_attachment)]


def openapi_part(config: GatewayConfig) -> ApiPart:
    """The route in the OpenAPI document, behind the pull API's token like the feed."""
    part = ApiPart()
    scheme = "apiToken" if config.api.token is not None else None
    download = {"description": "the bytes, as the case recorded their type",
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
                "headers": {"Content-Disposition": {"schema": string()}}}
    partial = {**download, "description": "the requested range of the bytes"}
    refused_range = {"description": "the Range is not within the attachment",
                     **problem_answers()["4XX"]}
    part.add("/v1/attachments/{sha256}", "get", operation(
        "An attachment of a stored case, by its sha256 (Range requests served)", ["feed"],
        {"200": download, "206": partial, "416": refused_range,
         **problem_answers(401, 403, 404, 422, 503)},
        scheme=scheme, parameters=[path_param(
            "sha256", "the attachment's `sha256` as listed in the case",
            string(pattern=SHA256_PATTERN))]))
    return part
