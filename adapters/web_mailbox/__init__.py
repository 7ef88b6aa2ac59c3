"""Web mailbox (网上信箱): the centre's website posts each submission here.

``POST /intake/<source>`` with JSON, ``application/x-www-form-urlencoded`` or
``multipart/form-data`` (file parts are attachments). Answers: 202 new case (``outcome``
new, repeat or related), 200 replay (same ``Idempotency-Key`` header or ``submission_id``
field, or the same content from the same reporter again), 422 problem+json naming
each bad field, 413 over the size limit, 401 with a wrong token, 429 when one client
submits faster than ``rate_limit`` allows (gateway/intake/ratelimit.py).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web
from pydantic import ConfigDict, Field, SecretStr

from adapters.web_mailbox import openapi as web_mailbox_openapi
from adapters.web_mailbox.multipart import (
    READER_ERRORS,
    Refused,
    malformed,
    named_parts,
    open_reader,
)
from gateway.intake.body_budget import BodyBudget, BudgetExhausted, read_bounded
from gateway.intake.openapi import ApiPart
from gateway.intake.ratelimit import RateLimiter, RateLimitOptions, too_many
from gateway.intake.sources import Adapter, AdapterEnv
from gateway.model.attachments import describe
from gateway.model.errors import FieldError, Rejected, encodable
from gateway.model.input_limits import InputLimits
from gateway.model.schema import Attachment, RawRecord
from gateway.model.strict_json import has_lone_surrogate, safe_name
from gateway.support import problem
from gateway.support.config import SourceConfig
from gateway.support.logging import get_logger
from gateway.support.tokens import bearer_ok
from normalizers.common.charset import media_type
from normalizers.web_form import ENVELOPE_TYPE, WebFormLimits

if TYPE_CHECKING:
    from gateway.intake.pipeline import Intake, IntakeResult

log = get_logger("adapters.web_mailbox")

DEFAULT_MEDIA_TYPES = [
    "image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf", "text/plain",
    "audio/mpeg", "audio/amr", "video/mp4",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
]
# Magic numbers of the types people most often mislabel; others are taken as declared.
_MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
}
STATUS_BY_OUTCOME = {"new": 202, "repeat": 202, "related": 202, "replay": 200,
                     "quarantined": 202}


class WebMailboxOptions(WebFormLimits):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None
    max_body_kb: int = Field(default=30 * 1024, ge=1)
    max_attachments: int = Field(default=5, ge=0)
    max_attachment_mb: float = Field(default=10.0, gt=0)
    allowed_media_types: list[str] = Field(default_factory=lambda: list(DEFAULT_MEDIA_TYPES))
    rate_limit: RateLimitOptions | None = Field(default_factory=RateLimitOptions)
    limits: InputLimits = Field(default_factory=InputLimits)


def answer(result: IntakeResult) -> web.Response:
    """The HTTP answer to a pushing source for what became of its record."""
    if result.outcome == "rejected":
        return problem.rejected(result.errors, raw_ref=f"raw:{result.raw_id}")
    return web.json_response(
        result.as_json(), status=STATUS_BY_OUTCOME[result.outcome],
        dumps=lambda o: json.dumps(o, ensure_ascii=False),
    )


class WebMailboxSource(Adapter[WebMailboxOptions]):
    channel = "web"
    default_format = "web_form"
    # Citizens' browsers post the centre's public form here: its protection is the rate
    # limit and the size and shape limits; ``token`` when only the website's backend posts.
    public_by_design = True

    def __init__(self, config: SourceConfig, options: Any, env: AdapterEnv) -> None:
        super().__init__(config, options, env)
        self.max_body = self.options.max_body_kb * 1024
        rate = self.options.rate_limit
        self.limiter = RateLimiter(rate) if rate is not None else None
        self.budget = BodyBudget(self.options.limits)

    def routes(self, intake: Intake) -> list[web.RouteDef]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, intake)

        return [web.post(f"/intake/{self.name}", handle)]

    async def handle(self, request: web.Request, intake: Intake) -> web.StreamResponse:
        """Refuse what costs nothing to refuse (rate, token, declared size), take the
        body's bytes from the budget, then read, journal and answer."""
        if (refusal := self._gate(request)) is not None:
            return refusal
        try:
            async with self.budget.hold(request.content_length or self.max_body):
                return await self._take(request, intake)
        except BudgetExhausted:
            self.refusals["busy"] += 1
            return self.budget.busy()

    def _gate(self, request: web.Request) -> web.Response | None:
        if self.limiter is not None:
            client = self.limiter.client(request)
            verdict = self.limiter.check(client)
            if not verdict.allowed:
                self.refusals["rate_limited"] += 1
                if verdict.first_refusal:  # once per flood, not once per request
                    log.warning("rate_limited", source=self.name, client=str(client),
                                retry_after_s=round(verdict.retry_after_s, 1))
                return too_many(verdict.retry_after_s)
        if not self._authorized(request):
            self.refusals["unauthorized"] += 1
            return problem.unauthorized()
        limit, setting = self._limit_of(request)
        if (request.content_length or 0) > limit:
            self.refusals["too_large"] += 1
            return problem.too_large(limit, setting)
        return None

    def _limit_of(self, request: web.Request) -> tuple[int, str]:
        """A multipart form may carry files up to ``max_body_kb``; a JSON or url-encoded
        body holds text only, up to ``limits.max_form_kb`` (never more than the former).
        The limit in bytes and the config key that sets it."""
        form = self.options.limits.max_form_bytes
        if request.content_type == "multipart/form-data" or self.max_body <= form:
            return self.max_body, "max_body_kb"
        return form, "limits.max_form_kb"

    async def _take(self, request: web.Request, intake: Intake) -> web.StreamResponse:
        key = encodable(request.headers.get("Idempotency-Key", "").strip()[:200]) or None
        received_at = datetime.now(UTC)
        blobs: dict[str, bytes] = {}
        rejection: Rejected | None = None
        if request.content_type == "multipart/form-data":
            try:
                payload, content_type, rejection = await self._read_multipart(request, blobs)
            except Refused as refused:
                self.refusals[refused.error.code] += 1
                return refused.response()
        else:
            limit, setting = self._limit_of(request)
            found = await read_bounded(request, limit)
            if found is None:
                self.refusals["too_large"] += 1
                return problem.too_large(limit, setting)
            payload, content_type = found, request.content_type
        raw = RawRecord(
            channel="web", source=self.name, source_ref=key or f"web-{uuid.uuid4().hex}",
            payload=payload, content_type=content_type, received_at=received_at,
            metadata={"remote": request.remote or "", "user_agent":
                      request.headers.get("User-Agent", "")[:200]},
            idempotency_key=key,
        )
        if rejection is not None:
            return answer(await intake.record_rejection(raw, rejection))
        return answer(await intake.submit(raw, blobs=blobs))

    def _authorized(self, request: web.Request) -> bool:
        if self.options.token is None:
            return True
        return bearer_ok(request, self.options.token.get_secret_value())

    async def _read_multipart(
        self, request: web.Request, blobs: dict[str, bytes]
    ) -> tuple[bytes, str, Rejected | None]:
        """Text parts become fields; file parts are checked and described in the envelope,
        their bytes put in ``blobs`` (kept by the pipeline unless the form is rejected).
        A body malformed or over the shape limits raises ``Refused`` (web_multipart)."""
        limits = self.options.limits
        fields: dict[str, str] = {}
        files: list[Attachment] = []
        errors: list[FieldError] = []
        total = 0
        async for part in named_parts(open_reader(request, limits), limits):
            limit = int(self.options.max_attachment_mb * 1024 * 1024) if part.filename else 64_000
            try:
                data = await _read_part(part, limit + 1)
            except READER_ERRORS as exc:
                raise malformed(exc, limits) from None
            total += len(data)
            if total > self.max_body:
                raise Refused(413, FieldError(
                    "body", "too_large", f"请求体超过 {self.max_body} 字节 (max_body_kb)",
                    f"the body exceeds {self.max_body} bytes (max_body_kb)"))
            if part.filename is None:
                self._text_part(part, data, fields, errors)
                continue
            error = self._check_file(part, data, limit, len(files))
            if error is not None:
                errors.append(error)
                continue
            attachment = describe(data, part.filename, _part_type(part))
            blobs[attachment.sha256] = data
            files.append(attachment)
        envelope = {"fields": fields, "attachments": [f.model_dump() for f in files]}
        payload = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
        return payload, ENVELOPE_TYPE, Rejected(errors) if errors else None

    @staticmethod
    def _text_part(part: BodyPartReader, data: bytes, fields: dict[str, str],
                   errors: list[FieldError]) -> None:
        """A text field, decoded in its declared charset; one that does not decode, or
        decodes to a lone surrogate (``charset=unicode_escape``), is an error naming it."""
        name = part.name or ""
        try:
            text = data.decode(part.get_charset("utf-8"))
        except (UnicodeDecodeError, LookupError):
            text = None
        if text is None or has_lone_surrogate(text):
            errors.append(FieldError(name, "unreadable", "字段编码无法识别",
                                     f"{safe_name(name)} is not valid text in its charset"))
        else:
            fields[name] = text

    def _check_file(
        self, part: BodyPartReader, data: bytes, limit: int, kept: int
    ) -> FieldError | None:
        name = part.name or "attachments"
        declared = _part_type(part)
        if kept >= self.options.max_attachments:
            return FieldError(name, "too_many_files",
                              f"附件不能超过 {self.options.max_attachments} 个",
                              f"at most {self.options.max_attachments} attachments")
        if len(data) > limit:
            return FieldError(name, "file_too_large",
                              f"附件不能超过 {self.options.max_attachment_mb:g} MB",
                              f"an attachment is larger than {self.options.max_attachment_mb:g} MB")
        if declared not in self.options.allowed_media_types:
            return FieldError(name, "media_type_not_allowed", f"不接受 {declared} 类型的附件",
                              f"attachments of type {declared} are not accepted")
        magic = _MAGIC.get(declared)
        if magic and not data.startswith(magic):
            return FieldError(name, "media_type_mismatch", "附件内容与声明的类型不符",
                              f"the file's content is not {declared}")
        return None

    def openapi(self) -> ApiPart:
        return web_mailbox_openapi.part(self.name, self.options)


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    """Read at most ``limit`` bytes of a part (a longer part is cut there and refused)."""
    chunks = []
    size = 0
    while size < limit:
        chunk = await part.read_chunk(min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _part_type(part: BodyPartReader) -> str:
    """The media type a multipart part declares (``application/octet-stream`` if none)."""
    return media_type(part.headers.get("Content-Type", "application/octet-stream"))
