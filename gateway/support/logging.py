"""Structured logs (structlog): JSON in production, readable console in a terminal.

Personal data is masked in every log line: mainland mobile and landline numbers, e-mail
addresses and resident ID-card numbers. Secrets read from the environment are registered
here by the config loader and replaced wholesale, so they never reach a log.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRETS: set[str] = set()

_ID_CARD = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
# Mobiles as typed: 13800138000, 138-0013-8000, 138 0013 8000, +86 13800138000.
_MOBILE = re.compile(r"(?<!\d)((?:(?:\+|00)?86[- ]?)?1[3-9]\d)([- ]?)\d{4}([- ]?)(\d{4})(?!\d)")
# Landlines with their area code: 0532-88886666, (0532)88886666, 010 1234 5678, +86 10 ….
_LANDLINE = re.compile(
    r"(?<!\d)((?:(?:\+|00)86[- ]?[(（]?0?|[(（]?0)[1-9]\d{1,2}[)）]?[- ]?)"
    r"\d{3,4}([- ]?)(\d{4})(?!\d)"
)
# Seven digits, possibly split by a few separators (0532 8888 6666), or an @.
_MAY_HOLD_PII = re.compile(r"(?:\d\D{0,3}){6}\d|@")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_PLAIN = (int, float, bool, type(None))


def register_secret(value: str) -> None:
    """Never print ``value`` in a log line (short values would mask too much; skip them)."""
    if len(value) >= 4:
        _SECRETS.add(value)


def mask_text(text: str) -> str:
    """Mask ID-card numbers, phone numbers, e-mail addresses and registered secrets."""
    for secret in _secrets_longest_first():  # a secret may contain another
        if secret in text:
            text = text.replace(secret, "***")
    if not _MAY_HOLD_PII.search(text):  # no digit run, no @: nothing to mask (the usual case)
        return text
    text = _ID_CARD.sub(r"\1********\2", text)
    text = _MOBILE.sub(r"\1\2****\3\4", text)
    text = _LANDLINE.sub(r"\1****\2\3", text)
    return _EMAIL.sub(r"\1***\2", text)


_sorted_secrets: tuple[frozenset[str], list[str]] = (frozenset(), [])


def _secrets_longest_first() -> list[str]:
    global _sorted_secrets
    if _sorted_secrets[0] != _SECRETS:
        _sorted_secrets = (frozenset(_SECRETS), sorted(_SECRETS, key=len, reverse=True))
    return _sorted_secrets[1]


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_mask_value(v) for v in value]
    if isinstance(value, _PLAIN):
        return value
    # Anything else (an exception, a model, a path) is rendered by its repr: mask that.
    return mask_text(repr(value))


# Values the gateway itself makes up: never personal data, and masking could garble them
# (a uuid's hex may look like a landline number).
SAFE_KEYS = frozenset({
    "level", "timestamp", "request_id", "poll_id", "case_code", "outcome",
    "raw_id", "source", "sink", "status", "ms", "logger",
})


def _mask_processor(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return {k: v if k in SAFE_KEYS else _mask_value(v) for k, v in event_dict.items()}


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Set up structlog; ``fmt`` is ``json``, ``console`` or ``auto`` (console on a TTY)."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
