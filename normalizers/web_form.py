"""Web mailbox (网上信箱) submissions: JSON, url-encoded form, or multipart envelope.

Field names are those of the published form (see docs/web-mailbox.md); errors name
them, so the sender can point at the box to fix. Unknown fields are ignored, so a site
may add its own (a CSRF token, say) without breaking intake.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.model import strict_json
from gateway.model.errors import FieldError, Rejected
from gateway.model.input_limits import InputLimits, WithLimits
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import Attachment, ComplaintDraft, Location, RawRecord, Reporter
from normalizers.common.charset import charset_param, media_type
from normalizers.common.phone import InvalidPhone, to_e164
from normalizers.common.text import clean_line, clean_text, clip
from normalizers.hotline.call_fields import form_pairs

ENVELOPE_TYPE = "application/vnd.minsheng.form+json"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_TRUE = {"1", "true", "yes", "on", "y", "是", "需要"}
_FALSE = {"0", "false", "no", "off", "n", "否", "不需要", ""}


# The fields' names in messages (Chinese); the citizen page labels its fields the same.
LABELS = {"name": "姓名", "phone": "电话", "email": "电子邮箱", "subject": "标题",
          "content": "内容", "address": "地址", "district_code": "区划代码",
          "category": "类别", "submission_id": "提交编号", "submitted_at": "提交时间"}
EMAIL_PATTERN = _EMAIL.pattern  # the page checks addresses with the same expression
INVALID_PHONE = FieldError(
    "phone", "invalid_phone", "不是有效的中国手机或固定电话号码",
    "not a valid Chinese mobile or landline number (landlines need the area code)")
INVALID_EMAIL = FieldError("email", "invalid_email", "电子邮箱格式不正确",
                           "not a valid e-mail address")
CONTACT_REQUIRED = FieldError(
    "phone", "contact_required", "非匿名反映须留电话或电子邮箱",
    "a phone number or an e-mail address is required unless anonymous")


def required_error(name: str) -> FieldError:
    """The error for an empty required field (the citizen page shows the same one)."""
    return FieldError(name, "required", f"{LABELS.get(name, '')}不能为空", f"{name} is required")


def too_long_error(name: str, limit: int, length: int | None = None) -> FieldError:
    """The error for a field over ``limit`` characters; the page, which checks as the
    citizen types, leaves out the ``length`` the server adds."""
    counted = f" ({length})" if length is not None else ""
    return FieldError(name, "too_long", f"{LABELS.get(name, '')}不能超过 {limit} 字",
                      f"{name} is longer than {limit} characters{counted}")


class WebFormLimits(BaseModel):
    """Length limits of the form's fields, in characters (config keys of the source)."""

    model_config = ConfigDict(extra="ignore")

    max_name_chars: int = Field(default=50, ge=1)
    max_subject_chars: int = Field(default=200, ge=1)
    max_content_chars: int = Field(default=5000, ge=1)
    max_address_chars: int = Field(default=200, ge=1)


def decode_fields(raw: RawRecord, limits: InputLimits) -> tuple[dict[str, Any], list[Attachment]]:
    """The form's fields (and attachments already kept by the adapter) from the body, read
    within the source's ``limits`` (strict JSON, at most ``max_form_fields`` fields)."""
    media = media_type(raw.content_type)
    charset = (charset_param(raw.content_type) or "").lower() or None
    try:
        if media == ENVELOPE_TYPE:
            envelope = strict_json.loads(raw.payload.decode("utf-8"), limits)
            files = [Attachment.model_validate(a) for a in envelope.get("attachments") or []]
            return dict(envelope["fields"]), files
        if media == "application/json" or media.endswith("+json"):
            utf8 = charset in (None, "utf-8", "utf8")
            data = strict_json.loads(raw.payload.decode("utf-8-sig" if utf8 else str(charset)),
                                     limits)
            if not isinstance(data, dict):
                raise Rejected.one("body", "not_object", "请求体须为 JSON 对象",
                                   "the JSON body must be an object")
            return data, []
        if media == "application/x-www-form-urlencoded":
            charset = charset or "utf-8"  # of raw octets and of percent-escapes alike
            pairs = form_pairs(raw.payload.decode(charset), limits, charset, "strict")
            return dict(pairs), []
    except (ValueError, KeyError, TypeError, AttributeError, LookupError):
        raise Rejected.one(
            "body", "unreadable", "请求体无法解析", f"the body is not valid {media}"
        ) from None
    raise Rejected.one(
        "body", "unsupported_media_type",
        "请求体须为 JSON、表单或 multipart/form-data",
        "the body must be JSON, application/x-www-form-urlencoded or multipart/form-data",
    )


class _Form:
    """Reads one field at a time, collecting every error instead of stopping at the first."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.errors: list[FieldError] = []

    def text(self, name: str, limit: int, *, required: bool = False,
             multiline: bool = False) -> str | None:
        value = self.fields.get(name)
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (str, int, float))):
            self.errors.append(FieldError(name, "invalid_type", f"{LABELS.get(name, '')}须为文本",
                                          f"{name} must be a text"))
            return None
        text = (clean_text if multiline else clean_line)(str(value)) if value is not None else ""
        if not text:
            if required:
                self.errors.append(required_error(name))
            return None
        if len(text) > limit:
            self.errors.append(too_long_error(name, limit, len(text)))
            return None
        return text

    def given(self, name: str) -> bool:
        """Whether the field holds anything (valid or not) beyond blanks."""
        value = self.fields.get(name)
        return value is not None and (not isinstance(value, str) or bool(clean_line(value)))

    def flag(self, name: str, default: bool) -> bool:
        value = self.fields.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        self.errors.append(FieldError(name, "invalid_boolean", "须为 是/否",
                                      f"{name} must be true or false"))
        return default

    def when(self, name: str) -> datetime | None:
        label = LABELS.get(name, "")
        text = self.text(name, 40)
        if text is None:
            return None
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            value = None
        if value is None or value.tzinfo is None:
            self.errors.append(FieldError(
                name, "invalid_datetime", f"{label}须为带时区的 ISO 8601 格式",
                f"{name} must be an ISO 8601 time with a zone, e.g. 2019-11-20T09:30:00+08:00",
            ))
            return None
        return value


def _contact(form: _Form, anonymous: bool) -> tuple[str | None, str | None]:
    phone_text = form.text("phone", 32)
    email = form.text("email", 254)
    phone = None
    if phone_text is not None:
        try:
            phone = to_e164(phone_text)
        except InvalidPhone:
            form.errors.append(INVALID_PHONE)
    if email is not None and not _EMAIL.match(email):
        form.errors.append(INVALID_EMAIL)
    if not anonymous and not form.given("phone") and not form.given("email"):
        form.errors.append(CONTACT_REQUIRED)
    return phone, email


def normalize(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    limits = ctx.settings(WebFormLimits)
    fields, attachments = decode_fields(raw, ctx.settings(WithLimits).limits)
    form = _Form(fields)
    anonymous = form.flag("anonymous", False)
    name = form.text("name", limits.max_name_chars)
    phone, email = _contact(form, anonymous)
    subject = form.text("subject", limits.max_subject_chars)
    content = form.text("content", limits.max_content_chars, required=True, multiline=True)
    address = form.text("address", limits.max_address_chars)
    district = form.text("district_code", 12)
    category = form.text("category", 100)
    submission_id = form.text("submission_id", 128)
    submitted_at = form.when("submitted_at")
    reply_wanted = form.flag("reply_wanted", not anonymous)
    confidential = form.flag("confidential", False)
    if form.errors:
        raise Rejected(form.errors)
    assert content is not None
    return ComplaintDraft(
        channel="web",
        source=raw.source,
        source_ref=submission_id or raw.source_ref,
        received_at=raw.received_at,
        reported_at=submitted_at or raw.received_at,
        reporter=Reporter(name=name, phone=phone, email=email, anonymous=anonymous,
                          reply_wanted=reply_wanted),
        confidential=confidential,
        subject=subject or _subject_from(content),
        body=content,
        location=Location(address=address, district_code=district)
        if address or district else None,
        attachments=attachments,
        category_hint=category,
    )


def _subject_from(content: str, limit: int = 30) -> str:
    return clip(content.split("\n", 1)[0], limit)
