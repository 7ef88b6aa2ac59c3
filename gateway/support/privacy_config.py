"""The ``privacy:`` config block: the identifier keys (gateway/support/keyed_ids.py) and
how long the access log is kept (gateway/store/audit.py).

Kept apart from config.py so the rules for personal data have one place; retention and
the audit log add their settings here (docs/personal-data.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway.support.keyed_ids import IdentifierKeys, identifier_keys, key_from_text

AUDIT_MIN_DAYS = 180


class PrivacyConfig(BaseModel):
    """How personal data is keyed (docs/personal-data.md)."""

    model_config = ConfigDict(extra="forbid")

    identifier_key: SecretStr | None = Field(
        default=None, description="${MINSHENG_IDENTIFIER_KEY}: hex or text, ≥ 16 bytes; "
        "unset: a local key made once in data_dir/identifier.key")
    previous_identifier_keys: list[SecretStr] = Field(
        default_factory=list, description="keys still accepted for matching while rotating")
    audit_retention_days: int = Field(
        default=365, ge=AUDIT_MIN_DAYS, description="days the access log is kept; the "
        "Cybersecurity Law (Art. 21) asks for at least six months, so never under 180")

    @field_validator("identifier_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("identifier_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            key_from_text(value.get_secret_value())
        return value

    @field_validator("previous_identifier_keys")
    @classmethod
    def _all_long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            key_from_text(key.get_secret_value())
        return value

    def keys(self, data_dir: Path) -> IdentifierKeys:
        """The keys in force (reads or makes the local key file when none is configured)."""
        current = self.identifier_key.get_secret_value() if self.identifier_key else None
        previous = [k.get_secret_value() for k in self.previous_identifier_keys]
        return identifier_keys(current, previous, data_dir)
