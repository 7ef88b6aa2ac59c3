"""The citizen page in a real headless browser (Debian's chromium driven by Playwright,
as tests/test_ops_page.py): fill in and send, see the case code; wrong input, see each
error beside its field (from the page's script, then from the server); attach a photo;
send with the keyboard alone; every field has an accessible name and every Tab stop a
visible focus; with JavaScript off the form still works. Every request the page makes
goes through a route that refuses anything not for the gateway itself. The screenshots
of docs/web-mailbox.md ("The page") are taken here (``SHOTS``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    async_playwright,
)

from gateway.server.app import Gateway
from tests.citizen_page import GOOD, page_gateway, png
from tests.conftest import base_url
from tests.test_ops_page import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
# The screenshots go to artifacts/ (ignored by git: the case code in them changes each
# day); MINSHENG_DOC_SHOTS=1 writes them over the ones docs/web-mailbox.md shows.
SHOTS = ROOT / ("docs/img" if os.environ.get("MINSHENG_DOC_SHOTS") else "artifacts")
PHONE = {"width": 390, "height": 844}
CODE = re.compile(r"^[A-Z]{2}-\d{8}-W-\d{6}-\d$")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: `make system-deps` installs Debian's chromium")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                          headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with page_gateway(tmp_path) as gw:
        yield gw


class Guarded:
    """A browser context whose every request passes a route: the gateway's own go on,
    anything else is aborted and remembered (the page must ask nothing of the network)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.outside: list[str] = []
        self.posts: list[str] = []
        self.problems: list[str] = []

    async def route(self, route: Route) -> None:
        url = route.request.url
        if not url.startswith(self.base + "/"):
            self.outside.append(url)
            await route.abort()
            return
        if route.request.method == "POST":
            self.posts.append(url)
        await route.continue_()

    async def open(self, browser: Browser, *,
                   javascript: bool = True) -> tuple[BrowserContext, Page]:
        context = await browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True,
                                            has_touch=True, java_script_enabled=javascript,
                                            timezone_id="Asia/Shanghai")
        await context.route("**/*", self.route)
        page = await context.new_page()
        page.on("console", self.console)
        page.on("pageerror", lambda e: self.problems.append(str(e)))
        await page.goto(self.base + "/")
        return context, page

    def console(self, message: ConsoleMessage) -> None:
        """An error in the page's console, but for the refusals the tests ask for."""
        if message.type == "error" and not re.search(r"status of 4(03|22)\b", message.text):
            self.problems.append(message.text)

    def check(self) -> None:
        assert self.outside == [], f"the page asked the network: {self.outside}"
        assert self.problems == [], f"errors in the page: {self.problems}"


async def fill_good(page: Page) -> None:
    await page.get_by_label("内容").fill(GOOD["content"])
    await page.get_by_label("标题").fill(GOOD["subject"])
    await page.get_by_label("地址").fill(GOOD["address"])
    await page.get_by_label("姓名").fill(GOOD["name"])
    await page.get_by_label("电话").fill(GOOD["phone"])


async def case_code(page: Page) -> str:
    code = (await page.locator("#case-code").inner_text()).strip()
    assert CODE.match(code), code
    return code


async def test_fill_attach_a_photo_send_and_see_the_code(gateway: Gateway,
                                                         browser: Browser) -> None:
    guard = Guarded(base_url(gateway))
    context, page = await guard.open(browser)
    await context.grant_permissions(["clipboard-read", "clipboard-write"],
                                    origin=guard.base)
    await fill_good(page)
    await page.get_by_label("附件").set_input_files(
        [{"name": "路口.png", "mimeType": "image/png", "buffer": png(640, 480)}])
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "citizen-page-form.png"), full_page=True)
    await page.get_by_role("button", name="提交").click()
    await page.wait_for_selector("#case-code")
    code = await case_code(page)
    assert "请把编号写下来或截屏保存" in await page.inner_text("main")
    await page.get_by_role("button", name="复制编号").click()
    await page.wait_for_selector("#copied:not(:empty)")  # no wait_for_function: the CSP
    assert await page.evaluate("navigator.clipboard.readText()") == code
    await page.screenshot(path=str(SHOTS / "citizen-page-code.png"), full_page=True)
    row = await gateway.store.read(lambda tx: tx.fetchone(
        "SELECT document FROM cases WHERE case_code = ?", (code,)))
    assert '"file_name": "路口.png"' in row[0] or '"file_name":"路口.png"' in row[0]
    assert guard.posts == [guard.base + "/intake/web"]
    await context.close()
    guard.check()


async def test_wrong_input_shows_errors_beside_the_fields(gateway: Gateway,
                                                           browser: Browser) -> None:
    guard = Guarded(base_url(gateway))
    context, page = await guard.open(browser)
    await page.get_by_label("电子邮箱").fill("nobody@")
    await page.get_by_label("内容").focus()  # leaving the field checks it
    await page.wait_for_selector("#err-email:not(:empty)")
    assert await page.inner_text("#err-email") == "电子邮箱格式不正确 not a valid e-mail address"
    await page.get_by_label("电子邮箱").fill("")
    await page.get_by_role("button", name="提交").click()  # nothing sent: the script says why
    assert guard.posts == []
    assert await page.inner_text("#err-content") == "内容不能为空 content is required"
    assert (await page.inner_text("#err-phone")).startswith("非匿名反映须留电话或电子邮箱")
    assert await page.evaluate("document.activeElement.id") == "f-content"
    assert await page.get_attribute("#f-content", "aria-invalid") == "true"
    await page.get_by_label("附件").set_input_files(
        [{"name": "x.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ"}])
    assert "不接受 application/x-msdownload 类型的附件" in await page.inner_text("#err-attachments")
    photos = [{"name": f"{n}.png", "mimeType": "image/png", "buffer": png()} for n in range(6)]
    await page.get_by_label("附件").set_input_files(photos)
    assert await page.inner_text("#err-attachments") == "附件不能超过 5 个 at most 5 attachments"
    await page.get_by_label("附件").set_input_files([])
    # What only the server checks (a phone number's shape) comes back beside its field.
    await page.get_by_label("内容").fill(GOOD["content"])
    await page.get_by_label("电话").fill("1380013")
    await page.get_by_role("button", name="提交").click()
    await page.wait_for_selector("#summary[role=alert]")
    assert (await page.inner_text("#err-phone")).startswith("不是有效的中国手机或固定电话号码")
    assert await page.input_value("#f-content") == GOOD["content"]  # the input is kept
    assert await page.evaluate("document.activeElement.id") == "summary"
    await page.screenshot(path=str(SHOTS / "citizen-page-errors.png"), full_page=True)
    await context.close()
    guard.check()


async def test_the_confidential_box_by_its_label_files_a_confidential_case(
        gateway: Gateway, browser: Browser) -> None:
    guard = Guarded(base_url(gateway))
    context, page = await guard.open(browser)
    await fill_good(page)
    box = page.get_by_role("checkbox", name="请为我保密 Keep my identity confidential")
    assert await box.get_attribute("aria-describedby") == "hint-confidential"
    assert not await box.is_checked()
    await page.get_by_text("请为我保密").click()  # the label ticks it
    assert await box.is_checked()
    await page.get_by_role("button", name="提交").click()
    await page.wait_for_selector("#case-code")
    code = await case_code(page)
    row = await gateway.store.read(lambda tx: tx.fetchone(
        "SELECT document FROM cases WHERE case_code = ?", (code,)))
    assert json.loads(row[0])["confidential"] is True
    await context.close()
    guard.check()


async def test_keyboard_alone_and_every_stop_visibly_focused(gateway: Gateway,
                                                             browser: Browser) -> None:
    guard = Guarded(base_url(gateway))
    context, page = await guard.open(browser)
    typed = {"f-content": GOOD["content"], "f-phone": GOOD["phone"]}
    stops: list[str] = []
    for _ in range(20):
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
    assert stops == ["f-content", "f-subject", "f-address", "f-name", "f-phone", "f-email",
                     "f-anonymous", "f-reply_wanted", "f-confidential", "f-attachments", "send"]
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#case-code")
    await case_code(page)
    await context.close()
    guard.check()


# The WCAG contrast ratio of every element's own text against the background it sits on.
CONTRASTS = """() => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => v / 255)
    .map((v) => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) { return c; }
    }
    return [255, 255, 255];
  };
  return [...document.querySelectorAll("body *")]
    .filter((el) => [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()))
    .filter((el) => el.offsetParent !== null)
    .map((el) => {
      const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      return [el.textContent.trim().slice(0, 20), ratio];
    });
}"""


async def test_every_field_has_an_accessible_name_and_text_has_contrast(
        gateway: Gateway, browser: Browser) -> None:
    guard = Guarded(base_url(gateway))
    context, page = await guard.open(browser)
    controls = page.locator("#mailbox input:not([type=hidden]), #mailbox textarea, button")
    assert await controls.count() == 11
    for i in range(await controls.count()):
        snapshot = await controls.nth(i).aria_snapshot()
        assert re.match(r'^- \w+ "[^"]*\S[^"]*"', snapshot), snapshot
    tree = await page.locator("main").aria_snapshot()
    for name in ("内容 What happened", "电话 Phone", "电子邮箱 E-mail", "需要回复 I want a reply",
                 "请为我保密 Keep my identity confidential"):
        assert name in tree, tree
    await page.get_by_role("button", name="提交").click()  # errors shown: their colours too
    contrasts = await page.evaluate(CONTRASTS)
    assert len(contrasts) > 20
    low = [(text, round(ratio, 2)) for text, ratio in contrasts if ratio < 4.5]
    assert low == [], f"text below a contrast of 4.5:1: {low}"
    await context.close()
    guard.check()


async def test_without_javascript_the_form_still_works(gateway: Gateway,
                                                       browser: Browser) -> None:
    guard = Guarded(base_url(gateway))
    context, page = await guard.open(browser, javascript=False)
    await fill_good(page)
    await page.get_by_role("button", name="提交").click()
    await page.wait_for_selector("#case-code")
    await case_code(page)
    assert await page.locator("#copy").is_hidden()  # copying needs the script
    await context.close()
    guard.check()
