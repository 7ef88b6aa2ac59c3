"""The ``lookup:`` config block: the look-up by case code (``GET /lookup``,
``POST /v1/lookup``; gateway/server/lookup_route.py, docs/citizen.md).

The look-up answers anyone who knows a case code and the last four digits of its phone
number (or its e-mail address), so it is limited twice against guessing: per client
address (``per_client``, the same options as a source's ``rate_limit``) and per case code
(``per_code``: however many addresses ask, one code gets only so many tries)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway.support.rate_limits import RateLimitOptions


class CodeLimit(BaseModel):
    """Tries per case code, whoever asks: ``burst`` at once, then ``per_minute``."""

    model_config = ConfigDict(extra="forbid")

    per_minute: float = Field(default=0.2, gt=0, description="tries per case code per minute")
    burst: int = Field(default=5, ge=1, description="tries a case code takes at once")
    max_codes: int = Field(default=100_000, ge=1, description="codes remembered in memory")

    def as_rate_limit(self) -> RateLimitOptions:
        """The same bucket as a rate limit's options (no address is exempt from it)."""
        return RateLimitOptions(per_minute=self.per_minute, burst=self.burst,
                                max_clients=self.max_codes, exempt=[], trusted_proxies=[])


class LookupConfig(BaseModel):
    """Whether the look-up is served, and how hard it is to guess through."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    per_client: RateLimitOptions = Field(
        default_factory=lambda: RateLimitOptions(per_minute=5, burst=10))
    per_code: CodeLimit = Field(default_factory=CodeLimit)
    # The page's form carries a CSRF token made under this key (gateway/support/web_page.py);
    # unset: a key drawn per process (replicas behind one address need a shared one).
    csrf_secret: SecretStr | None = None
    csrf_max_age_s: int = Field(default=4 * 3600, ge=60, le=7 * 86400)

    @field_validator("csrf_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value
