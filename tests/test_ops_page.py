"""The status page in a real headless browser: Debian's chromium (``make system-deps``)
driven by Playwright, against a running gateway with a week of data, a source down, a
refusing sink and a quarantined item. The screenshot is left in ``artifacts/ops.png``."""

from __future__ import annotations

import sys
import time
import types
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Request, async_playwright

from gateway.intake.pipeline import SourceBinding
from gateway.model.errors import SourceUnavailable
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord
from gateway.server.app import Gateway
from gateway.store import Tx
from tests.conftest import base_url, gateway_config
from tests.receiver import Receiver
from tests.test_metrics import GOOD, wait_for
from tests.test_poller import ListSource

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "artifacts" / "ops.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OPS_TOKEN = "wall-screen-token-9c2b"
DAY = 86400.0
SUBJECTS = {"phone": "来电反映：小区供暖温度不达标", "email": "邮件投诉：工地夜间施工扰民",
            "opinion": "网帖：主干道井盖缺失存在安全隐患", "web": "共享单车乱停放"}


def _draft(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    """Test normalizer: one case per record in the record's channel; 'BUG' breaks it."""
    text = raw.payload.decode()
    if text == "BUG":
        raise ValueError("normalizer bug on this record")
    return ComplaintDraft(channel=raw.channel, source=raw.source, source_ref=raw.source_ref,
                          received_at=raw.received_at, reported_at=raw.received_at,
                          subject=text[:20], body=text)


class ChannelSource(ListSource):
    """A pulled test source of a given channel."""

    def __init__(self, name: str, channel: str, items: list[str]) -> None:
        super().__init__(name, items)
        self.channel = channel  # type: ignore[misc]


def _pulled(gw: Gateway, source: ListSource) -> None:
    gw.intake.bindings[source.name] = SourceBinding(_draft, NormalizerContext(source.name))
    gw.adapters[source.name] = source
    gw.status.register(source.name, "pull", critical=source.name == "hotline")
    gw.poller.start(source)


async def _history(gw: Gateway) -> int:
    """A week of cases on every channel, busier by day; returns how many were filed."""
    channels = ["phone"] * 5 + ["web"] * 3 + ["email", "opinion", "opinion"]
    for name in ("hist-phone", "hist-web", "hist-email", "hist-opinion"):
        gw.intake.bindings[name] = SourceBinding(_draft, NormalizerContext(name))
    now, filed = time.time(), 0
    stamps = [now - 7 * DAY + i * 1500.0 for i in range(int(7 * DAY / 1500) - 2)]
    for i, at in enumerate(stamps):
        hour = datetime.fromtimestamp(at, gw.config.tz).hour
        if (8 <= hour <= 21 and i % 2) or i % 7 == 0:
            channel = channels[i % len(channels)]
            raw = RawRecord(channel=channel, source=f"hist-{channel}",  # type: ignore[arg-type]
                            source_ref=f"h-{i}", payload=SUBJECTS[channel].encode(),
                            content_type="text/plain", received_at=datetime.fromtimestamp(at, UTC))
            await gw.intake.submit(raw)
            filed += 1

    def backdate(tx: Tx) -> None:  # the cases were filed now: give them their own times
        tx.execute("UPDATE cases SET created_at = (SELECT received_at FROM raw_records r "
                   "WHERE r.id = cases.raw_id) WHERE source LIKE 'hist-%'")

    await gw.store.write(backdate)
    return filed


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
async def busy_gateway(tmp_path: Path, monkeypatch: Any) -> AsyncIterator[Gateway]:
    calls = types.ModuleType("adapters.cdr_webhook.flow")
    calls.kpis = lambda tx, now: {  # type: ignore[attr-defined]
        "answered_within_15s_ratio": 0.912, "abandoned_total": 37}
    monkeypatch.setitem(sys.modules, "adapters.cdr_webhook.flow", calls)
    receiver = Receiver()
    await receiver.start()
    receiver.refuse(["refused-0", "refused-1"], status=422)
    sinks = [{"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl"),
              "poll_interval_s": 0.2},
             {"name": "platform", "kind": "http", "url": receiver.url, "poll_interval_s": 0.2}]
    ops = {"token": OPS_TOKEN, "loopback_only": False, "refresh_s": 2, "cache_s": 0}
    gw = Gateway(gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", sinks=sinks, ops=ops))
    await gw.start()
    try:
        yield gw
    finally:
        if gw.started:
            await gw.stop()
        await receiver.close()


async def _load_data(gw: Gateway) -> None:
    await _history(gw)
    forum = ChannelSource("forum", "opinion", ["网帖：路灯不亮", "BUG"])
    weibo = ChannelSource("weibo", "opinion", [])
    weibo.fail = SourceUnavailable("HTTP 503 from weibo.example.cn")
    hotline = ChannelSource("hotline", "phone", ["来电：噪音扰民"])
    for source in (forum, weibo, hotline):
        _pulled(gw, source)
    async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
        for n in range(4):
            key = {"Idempotency-Key": f"refused-{n}"} if n < 2 else {}
            answer = await client.post("/intake/web", json={**GOOD, "subject": f"共享单车 {n}"},
                                       headers=key)
            assert answer.status_code == 202
        for bad in ({"name": "李", "phone": "1380013", "content": "噪音"}, {"content": ""}):
            assert (await client.post("/intake/web", json=bad)).status_code == 422

    async def settled() -> bool:
        doc = await _status(gw)
        weibo_state = next(s["state"] for s in doc["sources"] if s["name"] == "weibo")
        return bool(doc["dead_letters"] == 2 and doc["quarantine"]["open"] == 1
                    and weibo_state == "down")

    await wait_for(settled)

    def age_held_items(tx: Tx) -> None:  # one dead letter and the quarantined item: 9 days
        old = time.time() - 9 * DAY
        tx.execute("UPDATE outbox SET created_at = ? WHERE id = "
                   "(SELECT MIN(id) FROM outbox WHERE state = 'dead')", (old,))
        tx.execute("UPDATE quarantine SET created_at = ?", (old,))

    await gw.store.write(age_held_items)


async def _status(gw: Gateway) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
        return (await client.get("/v1/status", headers=headers)).json()  # type: ignore[no-any-return]


async def _counts(page: Page, selector: str) -> int:
    values = await page.eval_on_selector_all(
        selector, "nodes => nodes.map(n => Number(n.dataset.count))")
    return int(sum(values))


async def test_status_page_renders_sources_charts_and_refreshes(
    busy_gateway: Gateway, browser: Browser
) -> None:
    gw = busy_gateway
    await _load_data(gw)
    base = base_url(gw)
    context = await browser.new_context(viewport={"width": 1920, "height": 1080},
                                        locale="zh-CN", timezone_id="Asia/Shanghai")
    page = await context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(f"{base}/ops?token={OPS_TOKEN}")  # a kiosk URL: cookie, then /ops
    assert page.url == f"{base}/ops"
    await page.wait_for_selector('body:not([data-loaded="0"])')
    doc = await _status(gw)
    await _check_sources(page)
    await _check_charts(page, doc)
    await _check_tiles_and_lists(page, doc)
    ARTIFACT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACT), full_page=True)
    await _check_refreshes(page, gw)
    await gw.stop()  # the page keeps the last data and says the connection is lost
    await page.wait_for_selector("#banner:not(.hidden)", timeout=30000)
    assert "connection lost" in await page.inner_text("#banner")
    await context.close()
    outside = [u for u in requests if not u.startswith(base)]
    assert outside == [], f"the page asked the network: {outside}"
    assert {u.removeprefix(base).split("?")[0] for u in requests} >= {
        "/ops", "/ops/static/ops.css", "/ops/static/ops.js", "/v1/status"}
    assert [p for p in problems if "Failed to fetch" not in p
            and "ERR_CONNECTION_REFUSED" not in p] == []
    assert ARTIFACT.stat().st_size > 20_000


async def _check_sources(page: Page) -> None:
    for name, state in (("web", "up"), ("forum", "up"), ("hotline", "up"), ("weibo", "down")):
        card = page.locator(f'.source[data-source="{name}"]')
        await card.wait_for()
        assert await card.get_attribute("data-state") == state
    weibo = await page.inner_text('.source[data-source="weibo"]')
    assert "中断" in weibo and "down" in weibo and "HTTP 503 from weibo.example.cn" in weibo
    assert "网络舆情" in weibo and "拉取 pull" in weibo
    assert "关键 critical" in await page.inner_text('.source[data-source="hotline"]')


async def _check_charts(page: Page, doc: dict[str, Any]) -> None:
    day_total = sum(sum(d["cases"].values()) for d in doc["volumes"]["days"])
    hour_total = sum(sum(h["cases"].values()) for h in doc["volumes"]["hours"])
    assert day_total > 100 and hour_total > 10  # the week of history is there
    assert await _counts(page, "#chart-days rect.bar") == day_total
    assert await _counts(page, "#chart-hours rect.bar") == hour_total
    channels = await page.eval_on_selector_all(
        "#chart-days rect.bar", "nodes => [...new Set(nodes.map(n => n.dataset.channel))]")
    assert set(channels) == {"phone", "web", "email", "opinion"}
    legend = await page.inner_text("#legend-days")
    for label in ("电话", "网上信箱", "电子邮件", "网络舆情", "phone", "online opinion"):
        assert label in legend
    days = await page.eval_on_selector_all("#chart-days text.axis-label",
                                           "nodes => nodes.map(n => n.textContent)")
    assert any(d.startswith(doc["volumes"]["days"][-1]["date"][5:]) for d in days)


async def _check_tiles_and_lists(page: Page, doc: dict[str, Any]) -> None:
    assert await page.inner_text("#tile-dead .value") == "2"
    assert await page.inner_text("#tile-quarantine .value") == "1"
    for tile in ("#tile-dead", "#tile-quarantine"):  # never purged: their age is shown
        assert "最久 9.0 天 · oldest 9.0 d" in await page.inner_text(f"{tile} .sub")
    assert "bad" in (await page.get_attribute("#tile-quarantine", "class") or "")
    platform = await page.inner_text('#sinks tr[data-sink="platform"]')
    assert "9.0 天" in platform
    assert doc["quarantine"]["oldest_age_s"] >= 9 * DAY and doc["gateway"]["held_warn_days"] == 7
    assert await page.inner_text("#tile-calls .value") == "91.2%"
    cases_24h = sum(t["cases"] for t in doc["volumes"]["last_24h"].values())
    assert (await page.inner_text("#tile-cases .value")).replace(",", "") == str(cases_24h)
    assert "state-warning" in (await page.get_attribute("#overall", "class") or "")
    problems = await page.inner_text("#problems")
    assert "来源 weibo 中断 · source weibo down" in problems and "2 dead letter(s)" in problems
    assert "死信最久已存 9 天，超过 7 天 · oldest dead letter held 9 days, over 7" in problems
    assert ("隔离区最久已存 9 天，超过 7 天 · oldest quarantine entry held 9 days, over 7"
            in problems)
    sinks = await page.inner_text("#sinks")
    assert "platform" in sinks and "file" in sinks
    rejections = await page.inner_text("#rejections")
    assert "不是有效的中国手机或固定电话号码" in rejections and "content is required" in rejections
    assert await page.inner_text("#clusters")  # clusters, or 暂无 (none yet)


async def _check_refreshes(page: Page, gw: Gateway) -> None:
    before = int(await page.evaluate("Number(document.body.dataset.loaded)"))
    shown = (await page.inner_text("#tile-rejected .value")).replace(",", "")
    async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
        assert (await client.post("/intake/web", json={"content": ""})).status_code == 422

    async def refreshed() -> bool:  # polled from here: the page's CSP forbids eval'd waits
        loaded = int(await page.evaluate("Number(document.body.dataset.loaded)"))
        now = (await page.inner_text("#tile-rejected .value")).replace(",", "")
        return loaded > before and now == str(int(shown) + 1)

    await wait_for(refreshed)


async def test_page_asks_for_the_token_first(busy_gateway: Gateway, browser: Browser) -> None:
    page = await browser.new_page()
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    response = await page.goto(f"{base_url(busy_gateway)}/ops")
    assert response is not None and response.status == 401
    assert "运维令牌" in await page.inner_text("body")
    await page.fill("#token", OPS_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_selector('body:not([data-loaded="0"])')
    assert await page.locator(".source").count() >= 1
    assert all(r.url.startswith(base_url(busy_gateway)) for r in requests)
