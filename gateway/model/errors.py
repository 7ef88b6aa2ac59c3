"""Every error the gateway raises on purpose, grouped by what the caller must do.

::

    GatewayError
    ├── ConfigError             fatal at start; carries every error found, not the first
    ├── SourceError
    │   ├── SourceUnavailable   retriable: the poller backs off and logs once
    │   └── SourceMisconfigured fatal for that source: disabled and reported
    ├── Rejected                bad input: 4xx to a pusher, quarantine for pulled items
    └── SinkError
        ├── RetriableSinkError  5xx, 429, timeouts: stays in the outbox
        └── PermanentSinkError  other 4xx: dead-letter

Messages a citizen or operator reads carry Chinese and English side by side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


def encodable(text: str) -> str:
    """``text`` with any lone surrogate escaped (``\\udc80``), so UTF-8 can encode it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class GatewayError(Exception):
    """Base of every deliberate gateway error."""


class ConfigError(GatewayError):
    """The configuration is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {e}" for e in errors))


class SourceError(GatewayError):
    """A source could not be read."""


class SourceUnavailable(SourceError):
    """Temporary: the poller backs off and tries again."""


class SourceMisconfigured(SourceError):
    """Permanent until the config changes: the source is disabled and reported."""


@dataclass(frozen=True)
class FieldError:
    """One broken rule of the standard, naming the field and the reason in both languages."""

    field: str
    code: str
    zh: str
    en: str

    def __post_init__(self) -> None:
        # A field name may be the caller's own (a form part, a JSON key): a lone surrogate
        # in it must not break the problem answer or the journal's UTF-8 encode.
        for name in ("field", "zh", "en"):
            object.__setattr__(self, name, encodable(getattr(self, name)))

    @property
    def reason(self) -> str:
        return f"{self.zh} ({self.en})"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reason": self.reason}


class Rejected(GatewayError):
    """Input that breaks the standard. Never retried as is: fix the input or the config."""

    def __init__(self, errors: list[FieldError]) -> None:
        if not errors:
            raise ValueError("Rejected needs at least one FieldError")
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.en}" for e in errors))

    @classmethod
    def one(cls, field: str, code: str, zh: str, en: str) -> Rejected:
        return cls([FieldError(field, code, zh, en)])

    def as_list(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.errors]


class SinkError(GatewayError):
    """A delivery to a sink failed."""


class RetriableSinkError(SinkError):
    """5xx, 429, timeouts, connection errors: the entry stays in the outbox and is retried."""


class PermanentSinkError(SinkError):
    """The receiver refused the entry for good (other 4xx): it is dead-lettered."""
