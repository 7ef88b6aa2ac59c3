"""The web mailbox source's options, and the attachment rules' messages built from them.

The API (``adapters/web_mailbox/__init__.py``) and the citizen page
(``adapters/web_mailbox/page.py``) both read these, so a limit and its message are
written once: the page checks files in the browser with the server's own words.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, SecretStr, field_validator

from gateway.intake.ratelimit import RateLimitOptions
from gateway.model.errors import FieldError
from gateway.model.input_limits import InputLimits
from normalizers.web_form import WebFormLimits

DEFAULT_MEDIA_TYPES = [
    "image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf", "text/plain",
    "audio/mpeg", "audio/amr", "video/mp4",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
]


class WebMailboxOptions(WebFormLimits):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None
    max_body_kb: int = Field(default=30 * 1024, ge=1)
    max_attachments: int = Field(default=5, ge=0)
    max_attachment_mb: float = Field(default=10.0, gt=0)
    allowed_media_types: list[str] = Field(default_factory=lambda: list(DEFAULT_MEDIA_TYPES))
    rate_limit: RateLimitOptions | None = Field(default_factory=RateLimitOptions)
    limits: InputLimits = Field(default_factory=InputLimits)
    # The citizen page (docs/web-mailbox.md "The page"): where it is served, ``null`` for
    # none. A source with a ``token`` (only the website's backend posts) serves no page.
    page_path: str | None = "/"
    # Key of the form's CSRF tokens; without it each process draws its own at start, so
    # replicas behind one balancer need it set (``${VAR}``).
    csrf_secret: SecretStr | None = None
    csrf_max_age_s: int = Field(default=4 * 3600, ge=60, le=7 * 86400)

    @field_validator("page_path")
    @classmethod
    def _page_path_is_a_path(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or value.startswith("/intake/")
                                  or any(c in value for c in "{}?# ")):
            raise ValueError("page_path must be a plain path starting with '/', "
                             "outside /intake/ (e.g. '/' or '/mailbox')")
        return value

    @property
    def max_attachment_bytes(self) -> int:
        return int(self.max_attachment_mb * 1024 * 1024)

    @property
    def serves_page(self) -> bool:
        return self.page_path is not None and self.token is None


def too_many_files(options: WebMailboxOptions, field: str = "attachments") -> FieldError:
    return FieldError(field, "too_many_files", f"附件不能超过 {options.max_attachments} 个",
                      f"at most {options.max_attachments} attachments")


def file_too_large(options: WebMailboxOptions, field: str = "attachments") -> FieldError:
    return FieldError(field, "file_too_large",
                      f"附件不能超过 {options.max_attachment_mb:g} MB",
                      f"an attachment is larger than {options.max_attachment_mb:g} MB")


def type_not_allowed(declared: str, field: str = "attachments") -> FieldError:
    return FieldError(field, "media_type_not_allowed", f"不接受 {declared} 类型的附件",
                      f"attachments of type {declared} are not accepted")
