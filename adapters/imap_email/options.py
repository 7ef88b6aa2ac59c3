"""The options of an ``imap_email`` source (config keys beside ``name`` and ``adapter``)."""

from __future__ import annotations

import ipaddress
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from normalizers.email import EmailSettings
from normalizers.email.filters import NewsletterAction

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ImapEmailOptions(EmailSettings):
    """Where the mailbox is, how to log in, what to read and what to do afterwards.

    The normalizer's own keys (attachment limits, ``strip_quoted``…) come from
    ``EmailSettings``.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535,
                             description="default 993 (imaps) or 143 (starttls, none)")
    security: Literal["imaps", "starttls", "none"] = "imaps"
    verify_tls: bool = Field(default=True, description="check the server's certificate")
    ca_file: Path | None = Field(default=None, description="CA bundle (PEM) to trust")
    username: str = Field(min_length=1)
    password: SecretStr = Field(description="from the environment: ${IMAP_PASSWORD}")
    auth: Literal["login", "plain"] = "login"
    folders: list[str] = Field(default_factory=lambda: ["INBOX"], min_length=1)
    post_action: Literal["none", "seen", "move"] = "none"
    move_to: str | None = None
    idle: bool = Field(default=True, description="use IMAP IDLE where the server has it")
    idle_renew_s: float = Field(default=300.0, ge=5, le=1740)
    poll_interval_s: float = Field(default=60.0, gt=0)
    max_backoff_s: float = Field(default=300.0, gt=0)
    lease_s: float = Field(default=30.0, gt=0, le=600)
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    batch_size: int = Field(default=50, ge=1, le=200)
    fetch_max_mb: float = Field(default=32.0, gt=0)
    max_message_mb: float = Field(default=25.0, gt=0)
    own_addresses: list[str] = Field(
        default_factory=list, description="From addresses of mail the gateway sends itself")
    filter_senders: list[str] = Field(
        default_factory=list, description="From address patterns journaled as filtered, "
        "never filed ('noreply@*', '*@news.example.com'; * and ? wildcards)")
    newsletters: NewsletterAction = Field(
        default="filter", description="a mail with List-Unsubscribe and no reply/forward "
        "signal: journaled as filtered (filter), or filed as a case tagged newsletter (tag)")
    start_at: Literal["all", "new"] | date = Field(
        default="all", description="where a folder read for the first time starts: all its "
        "mail, only mail arriving from now on (new), or mail received since a day")

    @field_validator("folders")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if any(not f.strip() for f in value):
            raise ValueError("folder names must not be empty")
        if len(set(value)) != len(value):
            raise ValueError("a folder is listed twice")
        return value

    @field_validator("filter_senders")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        if any("@" not in p or not p.strip() for p in value):
            raise ValueError("each pattern names an address, with @ ('noreply@*')")
        return [p.strip().lower() for p in value]

    @field_validator("password")
    @classmethod
    def _given(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty (is the environment variable set?)")
        return value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"CA file {value} not found")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ImapEmailOptions:
        if self.post_action == "move" and not self.move_to:
            raise ValueError("post_action move needs move_to (the folder to move mail to)")
        if self.move_to is not None and self.move_to in self.folders:
            raise ValueError("move_to must not be one of the folders read")
        if self.security == "none" and not _loopback(self.host):
            raise ValueError("security none (no TLS) is only allowed to a loopback host")
        if self.auth == "login" and not self.password.get_secret_value().isascii():
            raise ValueError("a non-ASCII password needs auth: plain")
        return self

    @property
    def server_port(self) -> int:
        if self.port is not None:
            return self.port
        return 993 if self.security == "imaps" else 143

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * 1024 * 1024)

    @property
    def fetch_max_bytes(self) -> int:
        return int(self.fetch_max_mb * 1024 * 1024)
