"""Structured logs (structlog): JSON in production, readable console in a terminal.

Personal data is masked in every log line: mainland mobile and landline numbers, e-mail
addresses and resident ID-card numbers. Secrets read from the environment are registered
here by the config loader and replaced wholesale, so they never reach a log. Every line
means every line: the standard library's loggers (aiohttp's, asyncio's), warnings and
uncaught exceptions are rendered by the same processors (docs/security.md).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
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
# In a library's line: 11 digits or more (kept: the last four), see _mask_digit_runs.
_LONG_DIGITS = re.compile(r"\d{11,}")
STDLIB_HANDLER_NAME = "minsheng-masked"


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


def _mask_digit_runs(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask any run of 11 or more digits in a library's log line, keeping its last four.

    Other libraries quote raw bytes (aiohttp's ``b'\\x0013800138000'``): an escape glued
    to a phone or ID number hides it from the patterns of ``mask_text``, which need a
    number to stand alone. Our own lines keep their long numbers (timestamps in ms)."""
    return {k: v if k in SAFE_KEYS or not isinstance(v, str) else _LONG_DIGITS.sub(_keep_tail, v)
            for k, v in event_dict.items()}


def _keep_tail(match: re.Match[str]) -> str:
    return "*" * (len(match.group(0)) - 4) + match.group(0)[-4:]


def _renderer(fmt: str) -> Any:
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    if use_console:
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer(ensure_ascii=False)


def _common_processors() -> list[Any]:
    """What every line goes through, ours and other libraries': level, time, the
    exception as text, then the masking (after the exception is text, so it is masked)."""
    return [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _mask_processor,
    ]


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Set up structlog; ``fmt`` is ``json``, ``console`` or ``auto`` (console on a TTY).

    The standard library's loggers (aiohttp's, asyncio's, any library's) and uncaught
    exceptions are routed through the same processors, masking included: aiohttp's
    "Error handling request" tracebacks quote raw header values and file names."""
    renderer = _renderer(fmt)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *_common_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(renderer, level)
    _route_uncaught_exceptions()



def _route_stdlib_logging(renderer: Any, level: str) -> None:
    """One handler on the root logger, rendering every standard-library record through
    structlog's ``ProcessorFormatter`` with our processors; replaces one set up before."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.contextvars.merge_contextvars,
                           structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *_common_processors(), _mask_digit_runs, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(STDLIB_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    _remove_stdlib_handler()
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings.warn() goes through the "py.warnings" logger


def _remove_stdlib_handler() -> None:
    """Take our root handler off again (before a new one, or after an in-process test)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == STDLIB_HANDLER_NAME]:
        root.removeHandler(handler)


def unroute_logging() -> None:
    """Undo what ``configure_logging`` did outside structlog (for in-process tests)."""
    _remove_stdlib_handler()
    logging.getLogger().setLevel(logging.WARNING)  # the standard library's default
    logging.captureWarnings(False)
    sys.excepthook = sys.__excepthook__
    threading.excepthook = threading.__excepthook__


def _route_uncaught_exceptions() -> None:
    """An exception nobody caught is logged (masked), not printed raw by the interpreter."""
    crash_log = logging.getLogger("gateway.uncaught")

    def main_thread(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):  # Ctrl-C: the usual short message
            sys.__excepthook__(kind, exc, tb)
            return
        crash_log.critical("uncaught_exception", exc_info=(kind, exc, tb))

    def other_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            crash_log.critical("uncaught_exception_in_thread", exc_info=(
                args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = main_thread
    threading.excepthook = other_thread


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
