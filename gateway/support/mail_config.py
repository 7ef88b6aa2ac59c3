"""The ``smtp:`` config block (how the gateway sends mail) and the check of one e-mail
address: kept apart from the sender (gateway/support/mail.py) so that loading the config
imports no SMTP client."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from gateway.support.config_checks import is_loopback_host

SmtpSecurity = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: dict[SmtpSecurity, int] = {"starttls": 587, "tls": 465, "none": 25}
_FORBIDDEN_IN_ADDRESS = set(" \t\r\n<>,;\"()[]\\")


def check_address(value: str) -> str:
    """A bare address (``name@domain``): one ``@``, something on both sides, a dot in the
    domain (or ``localhost``), nothing that could split a header or a recipient list.
    Deliberately plain: the mail server is the judge of whether the mailbox exists."""
    local, at, domain = value.strip().rpartition("@")
    if (not at or not local or not domain or "@" in local
            or any(c in _FORBIDDEN_IN_ADDRESS for c in value.strip())
            or ("." not in domain.strip(".") and domain.lower() != "localhost")):
        raise ValueError("not an e-mail address (name@example.cn)")
    return f"{local}@{domain.lower()}"


MailAddress = Annotated[str, AfterValidator(check_address)]


class SmtpConfig(BaseModel):
    """Where and how the gateway sends mail (docs/configuration.md#smtp).

    The server's certificate and host name are always checked; ``ca_file`` adds a CA to
    trust (an internal one). ``security: none`` sends in clear and is only allowed to a
    loopback host (a local relay such as Postfix, which then speaks TLS onwards)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535,
                             description="default 587 (starttls), 465 (tls) or 25 (none)")
    security: SmtpSecurity = "starttls"
    ca_file: Path | None = Field(default=None, description="CA bundle (PEM) to trust")
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="${SMTP_PASSWORD}")
    from_address: MailAddress
    from_name: str | None = Field(default=None, max_length=100,
                                  description="display name, e.g. 民声网关 Minsheng Gateway")
    timeout_s: float = Field(default=30.0, gt=0, le=600)

    @field_validator("username", "password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"CA file {value} not found")
        return value

    @field_validator("from_name")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n"):
            raise ValueError("must be one line")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmtpConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (or neither, for a relay "
                             "that needs no login)")
        if self.security == "none" and not is_loopback_host(self.host.strip("[]")):
            raise ValueError("security none (no TLS) is only allowed to a loopback host")
        return self

    @property
    def server_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.security]
