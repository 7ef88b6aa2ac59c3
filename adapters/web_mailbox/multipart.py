"""Reading a web mailbox ``multipart/form-data`` body within the source's limits.

aiohttp's ``MultipartReader`` does the parsing; this module bounds it and turns every way
it can fail into a refusal that names the problem, so a hostile body is a 400 or a 413
problem+json, never a 500:

- no or an empty ``boundary`` parameter, a body that is truncated, does not start with
  the boundary or does not end with the closing one, a part header with NUL or control
  bytes: 400 ``malformed_multipart`` (the exception's own text is not echoed: it quotes
  the caller's bytes, which may hold personal data);
- a part header line longer than ``limits.max_part_header_bytes`` or more than
  ``limits.max_part_headers`` header lines: 400 naming the limit;
- more than ``limits.max_parts`` parts: 413, checked as each part starts, so a body of
  400,000 empty parts costs 51 part reads, not 400,000 (aiohttp parses each part's
  headers in Python, ~50-90 µs a part, without giving the event loop a turn when the
  bytes are already buffered: that is what held the loop for seconds);
- a part name or file name that is not valid UTF-8 or holds control characters: 400
  naming the part.

Refusals here happen before anything is journaled (like a wrong token): the body was
never a readable submission.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

from gateway.model.errors import FieldError
from gateway.model.input_limits import InputLimits
from gateway.model.strict_json import has_lone_surrogate, safe_name
from gateway.support import problem

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# aiohttp only *warns* about a Content-Disposition it cannot parse (an unterminated quote,
# a truncated header) and goes on with a guess, and the warning would print the caller's
# bytes to stderr. Made errors here (as the test suite has all warnings), they are refused.
for _category in (BadContentDispositionHeader, BadContentDispositionParam):
    warnings.filterwarnings("error", category=_category)
# What aiohttp's reader raises on a malformed body (ValueError covers UnicodeDecodeError).
READER_ERRORS = (ValueError, LookupError, AssertionError, HttpProcessingError,
                 BadContentDispositionHeader, BadContentDispositionParam)


@dataclass
class Refused(Exception):
    """A multipart body refused for its shape; ``response`` is the answer."""

    status: int
    error: FieldError

    def response(self) -> web.Response:
        title = ("请求体过大 (request body too large)" if self.status == 413
                 else "multipart 请求体无效 (malformed multipart body)")
        slug = "too-large" if self.status == 413 else "malformed-multipart"
        return problem.problem(self.status, slug, title, f"{self.error.zh} / {self.error.en}",
                               [self.error])


def malformed(exc: BaseException, limits: InputLimits) -> Refused:
    """The refusal for an exception aiohttp's reader raised (its text is not echoed)."""
    if isinstance(exc, LineTooLong):
        return Refused(400, FieldError(
            "body", "part_header_too_long",
            f"multipart 头部行超过 {limits.max_part_header_bytes} 字节 "
            "(limits.max_part_header_bytes)",
            f"a part header line is longer than {limits.max_part_header_bytes} bytes "
            "(limits.max_part_header_bytes)"))
    if isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc):
        return Refused(400, FieldError(
            "body", "too_many_part_headers",
            f"multipart 头部超过 {limits.max_part_headers} 行 (limits.max_part_headers)",
            f"a part has more than {limits.max_part_headers} header lines "
            "(limits.max_part_headers)"))
    return Refused(400, FieldError(
        "body", "malformed_multipart",
        "multipart 请求体无效：缺少或为空的 boundary、未以 boundary 开头、被截断，或头部含控制字符",
        "the multipart body is malformed: no or an empty boundary, not starting with the "
        "boundary, truncated, or a part header with NUL or control bytes"))


def open_reader(request: web.Request, limits: InputLimits) -> MultipartReader:
    """A reader of the request's body bounded by ``limits`` (``Refused`` without a
    usable boundary)."""
    try:
        return MultipartReader(request.headers, request.content,
                               max_field_size=limits.max_part_header_bytes,
                               max_headers=limits.max_part_headers)
    except READER_ERRORS as exc:
        raise malformed(exc, limits) from None


async def named_parts(reader: MultipartReader,
                      limits: InputLimits) -> AsyncIterator[BodyPartReader]:
    """The body's named parts, at most ``max_parts`` of them (counting unnamed and nested
    ones), each with a readable name and file name. Raises ``Refused``."""
    count = 0
    while True:
        try:
            part = await reader.next()
            names = (part.name, part.filename) if isinstance(part, BodyPartReader) else None
        except READER_ERRORS as exc:
            raise malformed(exc, limits) from None
        if part is None:
            return
        count += 1
        if count > limits.max_parts:
            raise Refused(413, FieldError(
                "body", "too_many_parts",
                f"multipart 部分超过 {limits.max_parts} 个 (limits.max_parts)",
                f"the body has more than {limits.max_parts} parts (limits.max_parts)"))
        if isinstance(part, BodyPartReader) and names is not None and names[0]:
            _check_names(names[0], names[1])
            yield part


def _check_names(name: str, filename: str | None) -> None:
    for label, text in (("name", name), ("filename", filename)):
        if text is not None and (has_lone_surrogate(text) or _CONTROL.search(text)):
            field = safe_name(name) if label == "filename" else "body"
            raise Refused(400, FieldError(
                field, f"unreadable_part_{label}",
                f"multipart 部分的 {label} 不是有效的 UTF-8 或含控制字符",
                f"a part's {label} is not valid UTF-8 or holds control characters"))
