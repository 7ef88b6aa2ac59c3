"""Reading the body of a phone system's request, shared by every phone format.

A body is a JSON object or a url-encoded form (``read_body``, ``form_fields``);
``Fields`` reads its fields one by one (text, flags, whole numbers, times, call ids),
collecting an error per bad field so that a record is refused with all of them at once.
``parse_time`` reads ISO 8601 times in the configured zone, ``check_order`` refuses
impossible call times.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from gateway.model import strict_json
from gateway.model.errors import FieldError, Rejected
from gateway.model.input_limits import InputLimits, WithLimits
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import RawRecord
from normalizers.common.charset import media_type
from normalizers.common.text import clean_line, clean_text

TIMES = ("started_at", "answered_at", "ended_at")
_TRUE = {"1", "true", "yes", "on", "是"}
_FALSE = {"0", "false", "no", "off", "否", ""}


def read_body(raw: RawRecord, ctx: NormalizerContext) -> dict[str, Any]:
    """A JSON object or a url-encoded form (``key[]`` repeated: a list) as a dict, within
    the source's ``limits`` (strict JSON, at most ``max_form_fields`` form fields)."""
    limits = ctx.settings(WithLimits).limits
    try:
        text = raw.payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Rejected.one("body", "not_utf8", "请求体须为 UTF-8 编码",
                           "the body is not UTF-8") from None
    kind = media_type(raw.content_type)
    if kind == "application/json" or kind.endswith("+json") or text.lstrip().startswith("{"):
        return json_object(text, limits)
    if kind in ("application/x-www-form-urlencoded", "text/plain", "") or "=" in text:
        return form_fields(text, limits)
    raise Rejected.one("body", "unsupported_media_type", "请求体须为 JSON 或表单",
                       "the body must be JSON or application/x-www-form-urlencoded")


def json_object(text: str, limits: InputLimits, name: str = "body") -> dict[str, Any]:
    """``text`` as a JSON object (``gateway.model.strict_json``); ``Rejected`` naming ``name``."""
    try:
        data = strict_json.loads(text, limits, name)
    except ValueError as exc:
        raise Rejected.one(name, "not_json", "不是有效的 JSON",
                           f"{name} is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(data, dict):
        raise Rejected.one(name, "not_object", "须为 JSON 对象", f"{name} must be a JSON object")
    return data


def form_fields(text: str, limits: InputLimits) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in form_pairs(text, limits):
        if key.endswith("[]"):
            fields.setdefault(key[:-2], []).append(value)
        else:
            fields[key] = value
    return fields


def form_pairs(text: str, limits: InputLimits, charset: str = "utf-8",
               errors: str = "replace") -> list[tuple[str, str]]:
    """The pairs of a url-encoded form; more than ``max_form_fields`` is refused before
    any is decoded (``parse_qsl`` counts the separators first). ``errors``: what a
    percent-escape that is not valid in ``charset`` becomes (phone forms: U+FFFD, as
    before; the web form: ``strict``, refused as unreadable)."""
    try:
        return parse_qsl(text, keep_blank_values=True, max_num_fields=limits.max_form_fields,
                         encoding=charset, errors=errors)
    except ValueError as exc:
        if "Max number of fields" not in str(exc):
            raise Rejected.one("body", "unreadable", "表单编码无法识别",
                               f"the form is not valid {charset}") from None
        raise Rejected.one("body", "too_many_fields",
                           f"表单字段超过 {limits.max_form_fields} 个 (limits.max_form_fields)",
                           f"the form has more than {limits.max_form_fields} fields "
                           "(limits.max_form_fields)") from None


class Fields:
    """Reads fields of one record, collecting every error; ``prefix`` names nested ones."""

    def __init__(self, data: Mapping[str, Any], prefix: str = "") -> None:
        self.data = data
        self.prefix = prefix
        self.errors: list[FieldError] = []

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, code: str, zh: str, en: str) -> None:
        self.errors.append(FieldError(self.name(key), code, zh, en))

    def text(self, key: str, limit: int = 200, *, required: bool = False,
             multiline: bool = False) -> str | None:
        value = self.data.get(key)
        if isinstance(value, list):
            value = value[-1] if value else None
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (str, int, float))):
            self.fail(key, "invalid_type", "须为文本", f"{self.name(key)} must be a text")
            return None
        text = (clean_text if multiline else clean_line)(str(value)) if value is not None else ""
        if not text:
            if required:
                self.fail(key, "required", "不能为空", f"{self.name(key)} is required")
            return None
        if len(text) > limit:
            self.fail(key, "too_long", f"不能超过 {limit} 字",
                      f"{self.name(key)} is longer than {limit} characters")
            return None
        return text

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None or isinstance(value, bool):
            return default if value is None else value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        self.fail(key, "invalid_boolean", "须为 是/否", f"{self.name(key)} must be true or false")
        return default

    def whole(self, key: str) -> int | None:
        text = self.text(key, 20)
        if text is None:
            return None
        try:
            number = int(float(text))
        except ValueError:
            number = -1
        if number < 0:
            self.fail(key, "invalid_number", "须为非负整数",
                      f"{self.name(key)} must be a whole number of at least 0")
            return None
        return number

    def when(self, key: str, tz: ZoneInfo) -> datetime | None:
        """An ISO 8601 time; without a zone it is read in ``tz`` (the configured zone)."""
        text = self.text(key, 40)
        if text is None or text in ("0", "0000-00-00 00:00:00"):
            return None
        value = parse_time(text, tz)
        if value is None:
            self.fail(key, "invalid_time", "时间格式无效",
                      f"{self.name(key)} is not a time such as 2019-11-20T09:30:00+08:00")
        return value

    def call_id(self, key: str) -> str:
        call_id = self.text(key, 200, required=True)
        return call_id or ""


def parse_time(text: str, tz: ZoneInfo) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)


def check_order(fields: Fields, times: Mapping[str, datetime | None],
                keys: Mapping[str, str]) -> None:
    """Refuse impossible times: ended before started, answered outside the call."""
    started, answered, ended = (times.get(k) for k in TIMES)
    if started and ended and ended < started:
        fields.fail(keys["ended_at"], "ended_before_started", "结束时间早于开始时间",
                    "the call ended before it started")
    if started and answered and answered < started:
        fields.fail(keys["answered_at"], "answered_before_started", "接听时间早于开始时间",
                    "the call was answered before it started")
    if answered and ended and ended < answered:
        fields.fail(keys["ended_at"], "ended_before_answered", "结束时间早于接听时间",
                    "the call ended before it was answered")
