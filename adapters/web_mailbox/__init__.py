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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from adapters.web_mailbox import openapi as web_mailbox_openapi
from adapters.web_mailbox.multipart import (
    READER_ERRORS,
    Refused,
    malformed,
    named_parts,
    open_reader,
)
from adapters.web_mailbox.options import (
    DEFAULT_MEDIA_TYPES,
    WebMailboxOptions,
    file_too_large,
    too_many_files,
    type_not_allowed,
)
from adapters.web_mailbox.page import CitizenPage
from gateway.intake.body_budget import BodyBudget, BudgetExhausted, read_bounded
from gateway.intake.openapi import ApiPart
from gateway.intake.ratelimit import RateLimiter, logged_network, too_many
from gateway.intake.sources import Adapter, AdapterEnv
from gateway.model.attachments import describe
from gateway.model.errors import FieldError, Rejected, encodable
from gateway.model.schema import Attachment, RawRecord
from gateway.model.strict_json import has_lone_surrogate, safe_name
from gateway.support import problem
from gateway.support.config import SourceConfig
from gateway.support.logging import get_logger
from gateway.support.tokens import bearer_ok
from gateway.support.web_page import CSRF_FIELD
from normalizers.common.charset import media_type
from normalizers.web_form import ENVELOPE_TYPE

if TYPE_CHECKING:
    from gateway.intake.pipeline import Intake, IntakeResult

log = get_logger("adapters.web_mailbox")
__all__ = ["DEFAULT_MEDIA_TYPES", "WebMailboxOptions", "WebMailboxSource", "answer"]

# Magic numbers of the types people most often mislabel; others are taken as declared.
_MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
}
STATUS_BY_OUTCOME = {"erased": 200, "new": 202, "repeat": 202, "related": 202, "replay": 200,
                     "quarantined": 202}


@dataclass
class ReadForm:
    """A multipart form as read: its text fields, the files kept, the files' errors."""

    fields: dict[str, str]
    files: list[Attachment]
    errors: list[FieldError]

    def envelope(self) -> bytes:
        """What is journaled: the fields and the files' descriptions (ENVELOPE_TYPE)."""
        doc = {"fields": self.fields, "attachments": [f.model_dump() for f in self.files]}
        return json.dumps(doc, ensure_ascii=False).encode("utf-8")

    def rejection(self) -> Rejected | None:
        return Rejected(self.errors) if self.errors else None


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
        self.limiter = None if rate is None else RateLimiter(
            rate, buckets=env.buckets.table(f"source:{self.name}", rate.max_clients))
        self.budget = BodyBudget(self.options.limits)
        self.page = CitizenPage(self.name, self.options) if self.options.serves_page else None

    def routes(self, intake: Intake) -> list[web.RouteDef]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, intake)

        page = self.page.routes() if self.page is not None else []
        return [web.post(f"/intake/{self.name}", handle), *page]

    async def handle(self, request: web.Request, intake: Intake) -> web.StreamResponse:
        """Refuse what costs nothing to refuse (rate, token, declared size), take the
        body's bytes from the budget, then read, journal and answer: as HTML to the
        citizen page (adapters/web_mailbox/page.py says how it is told apart), as JSON or
        problem+json to everyone else."""
        page = self.page if self.page is not None and self.page.wants(request) else None
        refusal = self._gate(request)
        if refusal is None:
            try:
                async with self.budget.hold(request.content_length or self.max_body):
                    if page is not None:
                        return await self._take_page(request, intake, page)
                    return await self._take(request, intake)
            except BudgetExhausted:
                self.refusals["busy"] += 1
                refusal = self.budget.busy()
        return page.refusal(refusal) if page is not None else refusal

    def _gate(self, request: web.Request) -> web.Response | None:
        if self.limiter is not None:
            client = self.limiter.client(request)
            verdict = self.limiter.check(client)
            if not verdict.allowed:
                self.refusals["rate_limited"] += 1
                if verdict.first_refusal:  # once per flood, not once per request
                    log.warning("rate_limited", source=self.name,
                                client_network=logged_network(client),
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
        blobs: dict[str, bytes] = {}
        rejection: Rejected | None = None
        if request.content_type == "multipart/form-data":
            try:
                form = await self._read_multipart(request, blobs)
            except Refused as refused:
                self.refusals[refused.error.code] += 1
                return refused.response()
            payload, content_type, rejection = form.envelope(), ENVELOPE_TYPE, form.rejection()
        else:
            limit, setting = self._limit_of(request)
            found = await read_bounded(request, limit)
            if found is None:
                self.refusals["too_large"] += 1
                return problem.too_large(limit, setting)
            payload, content_type = found, request.content_type
        raw = self._raw(request, payload, content_type)
        if rejection is not None:
            return answer(await intake.record_rejection(raw, rejection))
        return answer(await intake.submit(raw, blobs=blobs))

    async def _take_page(self, request: web.Request, intake: Intake,
                         page: CitizenPage) -> web.StreamResponse:
        """The citizen page's post: its CSRF token checked (a stale or foreign one is
        refused before anything is journaled), then filed like any other, and answered
        with the case code, or with the form again, the citizen's input kept."""
        blobs: dict[str, bytes] = {}
        try:
            form = await self._read_multipart(request, blobs)
        except Refused as refused:
            self.refusals[refused.error.code] += 1
            return page.refusal(refused.response())
        if not page.csrf.valid(form.fields.pop(CSRF_FIELD, "")):
            self.refusals["csrf_invalid"] += 1
            return page.stale(form.fields)
        raw = self._raw(request, form.envelope(), ENVELOPE_TYPE)
        rejection = form.rejection()
        result = await (intake.record_rejection(raw, rejection) if rejection is not None
                        else intake.submit(raw, blobs=blobs))
        if result.outcome == "rejected":
            return page.form(form.fields, result.errors, 422)
        return page.result(result.outcome, result.case_code, STATUS_BY_OUTCOME[result.outcome])

    def _raw(self, request: web.Request, payload: bytes, content_type: str) -> RawRecord:
        key = encodable(request.headers.get("Idempotency-Key", "").strip()[:200]) or None
        return RawRecord(
            channel="web", source=self.name, source_ref=key or f"web-{uuid.uuid4().hex}",
            payload=payload, content_type=content_type, received_at=datetime.now(UTC),
            metadata={"remote": request.remote or "", "user_agent":
                      request.headers.get("User-Agent", "")[:200]},
            idempotency_key=key,
        )

    def _authorized(self, request: web.Request) -> bool:
        if self.options.token is None:
            return True
        return bearer_ok(request, self.options.token.get_secret_value())

    async def _read_multipart(self, request: web.Request, blobs: dict[str, bytes]) -> ReadForm:
        """Text parts become fields; file parts are checked and described in the envelope,
        their bytes put in ``blobs`` (kept by the pipeline unless the form is rejected).
        A body malformed or over the shape limits raises ``Refused`` (web_multipart)."""
        limits = self.options.limits
        fields: dict[str, str] = {}
        files: list[Attachment] = []
        errors: list[FieldError] = []
        total = 0
        async for part in named_parts(open_reader(request, limits), limits):
            limit = self.options.max_attachment_bytes if part.filename else 64_000
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
            if not part.filename and not data:  # a browser's file input left empty
                continue
            error = self._check_file(part, data, limit, len(files))
            if error is not None:
                errors.append(error)
                continue
            attachment = describe(data, part.filename, _part_type(part))
            blobs[attachment.sha256] = data
            files.append(attachment)
        return ReadForm(fields, files, errors)

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
            return too_many_files(self.options, name)
        if len(data) > limit:
            return file_too_large(self.options, name)
        if declared not in self.options.allowed_media_types:
            return type_not_allowed(declared, name)
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
