"""The pieces that bound hostile input, one by one: the strict JSON reader, whole-number
query values, the request-body budget and the file-name sanitiser's device names."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.intake.body_budget import BodyBudget, BudgetExhausted
from gateway.model import strict_json
from gateway.model.attachments import sanitize_file_name
from gateway.model.errors import FieldError, Rejected
from gateway.model.input_limits import InputLimits
from gateway.support.query import whole_number

LIMITS = InputLimits()


def refusal(text: str, limits: InputLimits = LIMITS) -> tuple[str, str]:
    with pytest.raises(Rejected) as caught:
        strict_json.loads(text, limits)
    error = caught.value.errors[0]
    return error.field, error.code


@pytest.mark.parametrize(("text", "expected"), [
    ("[" * 5_000 + "]" * 5_000, ("body", "too_deep")),  # no RecursionError, ever
    ("[" * 100_000 + "]" * 100_000, ("body", "too_many_items")),
    ('{"a": ' + "[" * 33 + "]" * 33 + "}", ("body", "too_deep")),
    ("[" + ",".join(["1"] * 10_001) + "]", ("body", "too_many_items")),
    ('{"a": NaN}', ("body", "not_a_number")),
    ('{"a": Infinity}', ("body", "not_a_number")),
    ('{"a": -Infinity}', ("body", "not_a_number")),
    ('{"a": 1, "b": {"c": 1, "c": 2}}', ("c", "duplicate_key")),
    ('{"content": "a\\ud800"}', ("content", "lone_surrogate")),
    ('{"a": {"b": ["ok", "\\udfff"]}}', ("a.b[1]", "lone_surrogate")),
    ('{"\\udc80": 1}', ("\\udc80", "lone_surrogate")),
    ('"\\ud800"', ("body", "lone_surrogate")),
])
def test_strict_json_refuses_naming_the_field(text: str, expected: tuple[str, str]) -> None:
    assert refusal(text) == expected


@pytest.mark.parametrize("text", [
    '{"a": "😀 \\ud83d\\ude00"}',  # a surrogate pair is one character, not a lone half
    '{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',  # brackets in a string
    '{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\\"}',  # escaped quotes, backslash
    '{"a": [1, 2.5, -3e10, true, false, null]}',
])
def test_strict_json_reads_ordinary_json_as_the_standard_library(text: str) -> None:
    assert strict_json.loads(text, LIMITS) == json.loads(text)


def test_text_that_is_not_json_is_a_value_error_for_the_caller_to_word() -> None:
    with pytest.raises(ValueError):
        strict_json.loads("{'a': 1}", LIMITS)


def test_limits_are_the_configured_ones() -> None:
    small = InputLimits(max_json_depth=3, max_json_items=10)
    assert refusal('{"a": {"b": {"c": {}}}}', small) == ("body", "too_deep")
    assert refusal(json.dumps(list(range(11))), small) == ("body", "too_many_items")
    assert strict_json.loads('{"a": {"b": 1}}', small) == {"a": {"b": 1}}


def test_a_field_error_with_a_lone_surrogate_stays_encodable() -> None:
    error = FieldError("x\udcff", "code", "中文\ud800", "english")
    assert json.dumps(error.as_dict(), ensure_ascii=False).encode("utf-8")
    assert error.field == "x\\udcff"


@pytest.mark.parametrize(("text", "number"), [("0", 0), ("42", 42), (" 7 ", 7)])
def test_whole_number_reads_ascii_digits(text: str, number: int) -> None:
    assert whole_number(text, 0, 100) == number


@pytest.mark.parametrize("text", ["²", "١", "-1", "1_0", "1e3", "", "101", "9" * 5000, "0x1"])
def test_whole_number_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        whole_number(text, 0, 100)


async def test_the_body_budget_waits_then_refuses() -> None:
    budget = BodyBudget(InputLimits(body_budget_mb=1, body_wait_s=0.05))
    half = budget.capacity // 2
    async with budget.hold(half), budget.hold(budget.capacity - half):  # exactly full: fits
        with pytest.raises(BudgetExhausted):
            async with budget.hold(1):
                pass
    assert budget.in_use == 0


async def test_a_waiting_body_gets_the_bytes_freed() -> None:
    budget = BodyBudget(InputLimits(body_budget_mb=1, body_wait_s=5))
    order: list[str] = []

    async def second() -> None:
        async with budget.hold(budget.capacity):
            order.append("second")

    async with budget.hold(budget.capacity * 10):  # bigger than all: takes all of it
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0)
        order.append("first")
    await waiting
    assert order == ["first", "second"]
    busy: Any = budget.busy()
    assert busy.status == 429 and busy.headers["Retry-After"] == "5"


@pytest.mark.parametrize(("name", "safe"), [
    ("CON", "_CON"), ("nul.png", "_nul.png"), ("COM1.tar.gz", "_COM1.tar.gz"),
    ("lpt9", "_lpt9"), ("COM¹.txt", "_COM¹.txt"), ("AUX .pdf", "_AUX .pdf"),
    ("CONIN$", "_CONIN$"), ("../../PRN", "_PRN"), ("-rf.txt", "_-rf.txt"),
    ("console.log", "console.log"), ("COM10.txt", "COM10.txt"), ("a.CON", "a.CON"),
])
def test_device_names_and_options_are_not_file_names(name: str, safe: str) -> None:
    assert sanitize_file_name(name) == safe


def test_a_lone_surrogate_in_any_draft_field_is_refused_naming_it() -> None:
    """Whatever the channel (here a draft as an e-mail or feed normalizer would build
    it), validation refuses a lone surrogate naming the field, before any encode."""
    from datetime import UTC, datetime

    from gateway.model.schema import ComplaintDraft, Reporter
    from gateway.model.validation import validate_draft

    now = datetime.now(UTC)
    draft = ComplaintDraft(channel="email", source="mail", source_ref="m-1", received_at=now,
                           reported_at=now, reporter=Reporter(name="李\udc80"),
                           subject="路灯", body="路灯不亮")
    with pytest.raises(Rejected) as caught:
        validate_draft(draft)
    assert [(e.field, e.code) for e in caught.value.errors] == [
        ("reporter.name", "lone_surrogate")]
