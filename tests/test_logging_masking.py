"""Personal data and secrets never reach a log line; ordinary numbers survive."""

from __future__ import annotations

import json
import logging
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import structlog

import gateway.support.logging
from gateway.support.logging import (
    STDLIB_HANDLER_NAME,
    configure_logging,
    get_logger,
    mask_text,
    register_secret,
    unroute_logging,
)


@pytest.fixture(autouse=True)
def own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets registered by other tests (any value read from the environment) stay out."""
    monkeypatch.setattr(gateway.support.logging, "_SECRETS", set())


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    """Restores structlog's defaults after a test that configured it.

    Tests call ``configure_logging`` in their body: the logger binds ``sys.stderr`` when
    configured, and only during the test's call phase is that capsys's stream. The root
    logger's handler and the exception hooks it set are taken off again too."""
    try:
        yield
    finally:
        structlog.reset_defaults()
        unroute_logging()


@pytest.mark.parametrize(("text", "masked"), [
    ("市民13800138000来电反映", "市民138****8000来电反映"),
    ("电话：138-0013-8000，谢谢", "电话：138-****-8000，谢谢"),
    ("手机 138 0013 8000。", "手机 138 **** 8000。"),
    ("来电+8613800138000", "来电+86138****8000"),
    ("来电 +86 138 0013 8000", "来电 +86 138 **** 8000"),
    ("来电008613800138000", "来电0086138****8000"),
])
def test_mobile_numbers_are_masked_in_chinese_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(("text", "masked"), [
    ("座机0532-88886666转", "座机0532-****6666转"),
    ("座机053288886666。", "座机0532****6666。"),
    ("座机(0532)88886666", "座机(0532)****6666"),
    ("座机（0532）88886666", "座机（0532）****6666"),
    ("座机0532 8888 6666", "座机0532 **** 6666"),
    ("北京010-12345678", "北京010-****5678"),
    ("北京+86-10-12345678", "北京+86-10-****5678"),
])
def test_landline_numbers_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(("text", "masked"), [
    ("邮箱zhang.san@example.com请回复", "邮箱z***@example.com请回复"),
    ("<li+12345@mail.gov.cn>", "<l***@mail.gov.cn>"),
])
def test_email_addresses_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(("text", "masked"), [
    ("身份证号11010519491231002X，住址", "身份证号110105********002X，住址"),
    ("身份证号11010519491231002x。", "身份证号110105********002x。"),
    ("证件440524188001010014", "证件440524********0014"),
])
def test_id_card_numbers_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_several_kinds_in_one_message() -> None:
    text = ("我叫黄某，身份证11010519491231002X，手机13800138000，"
            "座机0532-88886666，邮箱huang@example.com，请联系。")
    masked = mask_text(text)
    for secret in ("11010519491231002X", "13800138000", "88886666", "huang@"):
        assert secret not in masked
    assert masked.startswith("我叫黄某，身份证110105")
    assert masked.endswith("@example.com，请联系。")


@pytest.mark.parametrize("text", [
    "case CY-20191120-W-000123-7 created",
    "CY-20240229-P-1234567-X",
    "2019-11-20T09:30:00.123456+00:00",
    "2019/11/20 09:30:00",
    "ts=1574213400 ms=1574213400123 float=1574213400.123",
    "raw:42 outbox 1234 attempts=12",
    "sha256:2d44e8ea1a5ad2e56b9e7e3c04a43b2e",
    "listening on 127.0.0.1:8080",
    "拨打12345热线，或110、12315",
    "归属行政区划370214，邮编266000",
    "版本 3.11.7，耗时 0.25 秒",
])
def test_ordinary_numbers_are_not_destroyed(text: str) -> None:
    assert mask_text(text) == text


def test_registered_secrets_are_masked_longest_first() -> None:
    short = f"s{uuid.uuid4().hex[:8]}"
    long = f"{short}-and-more-{uuid.uuid4().hex}"
    register_secret(short)
    register_secret(long)
    assert mask_text(f"token={long} other={short}") == "token=*** other=***"


def test_secrets_shorter_than_four_characters_are_not_registered() -> None:
    register_secret("abc")
    assert mask_text("abc") == "abc"


@dataclass
class Caller:
    name: str
    phone: str


def test_a_json_log_line_is_masked(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "debug")
    secret = f"sk-{uuid.uuid4().hex}"
    register_secret(secret)
    log = get_logger("test.masking")
    log.info("来电 13800138000 已受理", case_code="CY-20191120-P-000123-1",
             reporter={"phone": "+8613800138000", "email": "zhang.san@example.com",
                       "ids": ["11010519491231002X", 12345]},
             header=f"Bearer {secret}", caller=Caller("黄女士", "0532-88886666"),
             attempts=3, ok=True)
    line = capsys.readouterr().err.strip()
    entry = json.loads(line)
    assert entry["event"] == "来电 138****8000 已受理"
    assert entry["case_code"] == "CY-20191120-P-000123-1"
    assert entry["reporter"] == {"phone": "+86138****8000", "email": "z***@example.com",
                                 "ids": ["110105********002X", 12345]}
    assert entry["header"] == "Bearer ***"
    assert "88886666" not in entry["caller"] and "0532-****6666" in entry["caller"]
    assert entry["attempts"] == 3 and entry["ok"] is True
    assert entry["level"] == "info"
    assert entry["timestamp"].endswith("Z") and entry["timestamp"][:2] == "20"
    for raw in ("13800138000", "zhang.san", "19491231", secret):
        assert raw not in line


def test_an_exception_in_a_json_log_line_is_masked(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "debug")
    log = get_logger("test.masking")
    try:
        raise ValueError("bad phone 13800138000 for zhang.san@example.com")
    except ValueError:
        log.exception("normalizer failed", source="web")
    line = capsys.readouterr().err.strip()
    entry = json.loads(line)
    assert "ValueError: bad phone 138****8000 for z***@example.com" in entry["exception"]
    assert "13800138000" not in line and "zhang.san" not in line


def test_console_logs_are_masked_too(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("console", "info")
    get_logger("test.masking").warning("retry", phone="13800138000")
    err = capsys.readouterr().err
    assert "138****8000" in err and "13800138000" not in err


def test_level_filtering(restore_structlog: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "warning")
    log = get_logger("test.masking")
    log.info("hidden")
    log.warning("shown")
    lines = capsys.readouterr().err.strip().splitlines()
    assert [json.loads(x)["event"] for x in lines] == ["shown"]


def test_other_libraries_log_records_are_masked_as_ours(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """aiohttp quotes raw request bytes in its "Error handling request" tracebacks: an
    escape glued to a number hides it from the phone and ID patterns, so a library's
    line also has every run of 11 or more digits masked but its last four."""
    configure_logging("json", "info")
    try:
        raise ValueError("Invalid header value char: b'X-Id: \\x00110105199003071234 "
                         "13800138000 wang@example.com'")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s",
                                                      "127.0.0.1")
    logging.getLogger("asyncio").warning("slow callback 13912345678")
    logging.getLogger("some.library").debug("below the level: not shown")
    lines = [json.loads(x) for x in capsys.readouterr().err.strip().splitlines()]
    assert [(x["logger"], x["level"]) for x in lines] == [("aiohttp.server", "error"),
                                                          ("asyncio", "warning")]
    assert lines[0]["event"] == "Error handling request from 127.0.0.1"
    assert "\\x****************1234 138****8000 w***@example.com" in lines[0]["exception"]
    assert lines[1]["event"] == "slow callback 139****5678"
    assert lines[0]["timestamp"].endswith("Z")


def test_warnings_and_uncaught_exceptions_are_logged_masked(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated call for 13800138000", UserWarning, stacklevel=1)
    try:
        raise RuntimeError("crashed on 37020219851231002X")
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    lines = [json.loads(x) for x in capsys.readouterr().err.strip().splitlines()]
    assert [x["logger"] for x in lines] == ["py.warnings", "gateway.uncaught"]
    assert "138****8000" in lines[0]["event"] and "13800138000" not in lines[0]["event"]
    assert lines[1]["level"] == "critical"
    assert "RuntimeError: crashed on 370202********002X" in lines[1]["exception"]


def test_configuring_twice_keeps_one_root_handler(restore_structlog: None) -> None:
    configure_logging("json", "info")
    configure_logging("console", "warning")
    ours = [h for h in logging.getLogger().handlers if h.get_name() == STDLIB_HANDLER_NAME]
    assert len(ours) == 1 and logging.getLogger().level == logging.WARNING
