"""The look-up page in a real headless browser (Debian's chromium driven by Playwright, as
tests/test_citizen_page_browser.py): fill the code and the digits, see the history; wrong
digits, see the neutral message; the script's own checks; keyboard alone with a visible
focus at every stop; every input with an accessible name and text with contrast; with
JavaScript off the form still works. Every request the page makes goes through a route
that refuses anything not for the gateway. The screenshots of docs/citizen.md ("Look-up
by case code") are taken here (``SHOTS``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from gateway.server.app import Gateway
from tests.citizen_page import GOOD
from tests.conftest import base_url, gateway_config
from tests.test_citizen_page_browser import CONTRASTS, SHOTS, Guarded
from tests.test_citizen_page_browser import browser as chromium

AUTH = {"Authorization": "Bearer test-api-token"}
browser = chromium  # the citizen page's fixture: one chromium per test


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}",
                                lookup={"per_code": {"burst": 50}}))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.fixture
async def code(gateway: Gateway) -> str:
    """A web case with two statuses from the case platform."""
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        filed = await client.post("/intake/web", json=GOOD)
        case_code: str = filed.json()["case_code"]
        for status in ({"status": "accepted", "at": "2026-12-04T09:00:00+08:00"},
                       {"status": "assigned", "department": "城阳区城市管理局",
                        "at": "2026-12-04T10:30:00+08:00"}):
            posted = await client.post(f"/v1/cases/{case_code}/status", json=status,
                                       headers=AUTH)
            assert posted.status_code == 201
    return case_code


class LookupGuard(Guarded):
    """The citizen page's guard, opening the look-up page instead."""

    async def open_lookup(self, browser: Browser, query: str = "", *,
                          javascript: bool = True) -> tuple[BrowserContext, Page]:
        context, page = await self.open(browser, javascript=javascript)
        await page.goto(self.base + "/lookup" + query)
        return context, page

    def console(self, message: object) -> None:
        text = getattr(message, "text", "")
        if getattr(message, "type", "") == "error" and not re.search(
                r"status of 4(04|22)\b", text):
            self.problems.append(text)


async def test_fill_code_and_digits_and_see_the_history(gateway: Gateway, code: str,
                                                        browser: Browser) -> None:
    guard = LookupGuard(base_url(gateway))
    context, page = await guard.open_lookup(browser, f"?case_code={code}")
    assert await page.get_by_label("案件编号").input_value() == code  # prefilled
    await page.get_by_label("电话号码后四位").fill("8000")
    await page.screenshot(path=str(SHOTS / "lookup-form.png"), full_page=True)
    await page.get_by_role("button", name="查询").click()
    await page.wait_for_selector("#history")
    assert (await page.locator("#case-code").inner_text()).strip() == code
    steps = await page.locator("#history li").all_inner_texts()
    assert len(steps) == 2 and "已接办" in steps[0] and "城阳区城市管理局" in steps[1]
    assert "2026-12-04 10:30" in steps[1]
    assert await page.evaluate("document.activeElement.id") == "done"  # the script's focus
    text = await page.locator("body").inner_text()
    for personal in (GOOD["name"], GOOD["phone"], GOOD["address"], GOOD["content"], "8000"):
        assert personal not in text
    await page.screenshot(path=str(SHOTS / "lookup-history.png"), full_page=True)
    await context.close()
    guard.check()


async def test_wrong_digits_show_the_neutral_message(gateway: Gateway, code: str,
                                                     browser: Browser) -> None:
    guard = LookupGuard(base_url(gateway))
    context, page = await guard.open_lookup(browser)
    # The script's own checks first: nothing sent.
    await page.get_by_role("button", name="查询").click()
    assert "请填写案件编号" in await page.locator("#err-case_code").inner_text()
    assert "请填写电话号码后四位" in await page.locator("#err-phone_last4").inner_text()
    assert await page.evaluate("document.activeElement.id") == "f-case_code"
    await page.get_by_label("电话号码后四位").fill("80")
    await page.get_by_label("案件编号").fill(code)
    await page.get_by_role("button", name="查询").click()
    assert "4 位数字" in await page.locator("#err-phone_last4").inner_text()
    assert guard.posts == []
    await page.get_by_label("电话号码后四位").fill("8001")
    await page.get_by_role("button", name="查询").click()
    await page.wait_for_selector("#no-match")
    message = await page.locator("#no-match").inner_text()
    assert "未找到匹配的案件" in message and "No case matches" in message
    assert await page.evaluate("document.activeElement.id") == "summary"  # announced
    assert await page.get_by_label("案件编号").input_value() == code
    assert await page.get_by_label("电话号码后四位").input_value() == ""  # not shown back
    await page.screenshot(path=str(SHOTS / "lookup-no-match.png"), full_page=True)
    await context.close()
    guard.check()


async def test_keyboard_alone_and_every_stop_visibly_focused(gateway: Gateway, code: str,
                                                             browser: Browser) -> None:
    guard = LookupGuard(base_url(gateway))
    context, page = await guard.open_lookup(browser)
    typed = {"f-case_code": code, "f-phone_last4": "8000"}
    stops: list[str] = []
    for _ in range(10):
        await page.keyboard.press("Tab")
        focused = await page.evaluate("""() => {
            const el = document.activeElement, style = getComputedStyle(el);
            return {id: el.id || el.tagName, outline: style.outlineStyle,
                    width: parseFloat(style.outlineWidth)};
        }""")
        assert focused["outline"] != "none" and focused["width"] >= 2, focused
        stops.append(focused["id"])
        if focused["id"] in typed:
            await page.keyboard.type(typed[focused["id"]])
        if focused["id"] == "send":
            break
    assert stops == ["f-case_code", "f-phone_last4", "f-email", "send"]
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#history")
    await context.close()
    guard.check()


async def test_every_input_has_an_accessible_name_and_text_has_contrast(
        gateway: Gateway, code: str, browser: Browser) -> None:
    guard = LookupGuard(base_url(gateway))
    context, page = await guard.open_lookup(browser)
    controls = page.locator("#lookup input:not([type=hidden]), #lookup button")
    assert await controls.count() == 4
    for i in range(await controls.count()):
        snapshot = await controls.nth(i).aria_snapshot()
        # (YAML quotes a whole line with a colon in it: the e-mail field's "或：")
        assert re.match(r'^- \'?\w+ "[^"]*\S[^"]*"', snapshot), snapshot
    tree = await page.locator("main").aria_snapshot()
    for name in ("案件编号 Case code", "电话号码后四位 Last four digits of the phone number",
                 "或：电子邮箱 Or: e-mail address", "查询 Look up"):
        assert name in tree, tree
    await page.get_by_role("button", name="查询").click()  # errors shown: their colours too
    low = [(t, round(r, 2)) for t, r in await page.evaluate(CONTRASTS) if r < 4.5]
    assert low == [], f"text below a contrast of 4.5:1: {low}"
    await page.get_by_label("案件编号").fill(code)
    await page.get_by_label("电话号码后四位").fill("8000")
    await page.get_by_role("button", name="查询").click()
    await page.wait_for_selector("#history")
    contrasts = await page.evaluate(CONTRASTS)
    assert len(contrasts) > 10
    low = [(t, round(r, 2)) for t, r in contrasts if r < 4.5]
    assert low == [], f"text below a contrast of 4.5:1: {low}"
    await context.close()
    guard.check()


async def test_without_javascript_the_form_still_works(gateway: Gateway, code: str,
                                                       browser: Browser) -> None:
    guard = LookupGuard(base_url(gateway))
    context, page = await guard.open_lookup(browser, javascript=False)
    await page.get_by_label("案件编号").fill(code)
    await page.get_by_label("电话号码后四位").fill("8001")
    await page.get_by_role("button", name="查询").click()
    await page.wait_for_selector("#no-match")
    await page.get_by_label("电话号码后四位").fill("8000")
    await page.get_by_role("button", name="查询").click()
    await page.wait_for_selector("#history")
    assert len(guard.posts) == 2
    await context.close()
    guard.check()
