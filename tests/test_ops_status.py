"""Access to the ops views (operator token, page cookie, loopback only) and ``minsheng
status``, live from a running gateway and from the store when none answers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.model.errors import ConfigError
from gateway.ops.routes import COOKIE, cookie_value, refusal, store_view, summarize
from gateway.server.app import Gateway
from gateway.store import Store, Tx, outbox, quarantine
from gateway.store.ops_queries import VolumeCache
from gateway.support.config import OpsConfig, parse_config
from tests.conftest import TEST_PRIVACY, base_url, gateway_config
from tests.pg import free_port
from tests.procs import ROOT, subprocess_env, write_config
from tests.receiver import Receiver
from tests.test_metrics import GOOD, running

OPS_TOKEN = "ops-token-for-tests-5d1e"
ENV = {"MINSHENG_TEST_OPS_TOKEN": OPS_TOKEN, "MINSHENG_API_TOKEN": "api-token-for-tests"}


def raw_config(tmp_path: Path, store_url: str, **overrides: Any) -> dict[str, Any]:
    """A config as written in a file: secrets as ``${VAR}``, read from the environment."""
    return {
        "region_code": "CY", "data_dir": str(tmp_path / "var"),
        "server": {"listen": f"127.0.0.1:{free_port()}", "shutdown_timeout_s": 5},
        "store": {"url": store_url}, "privacy": TEST_PRIVACY,
        "api": {"token": "${MINSHENG_API_TOKEN}"},
        "log": {"format": "json"},
        "ops": {"token": "${MINSHENG_TEST_OPS_TOKEN}", "loopback_only": False, "cache_s": 0},
        "sources": [{"name": "web", "adapter": "web_mailbox"}],
        "sinks": [{"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl"),
                   "poll_interval_s": 0.2}],
        **overrides,
    }


def with_env(raw: dict[str, Any]) -> Gateway:
    with mock.patch.dict(os.environ, ENV):
        return Gateway(parse_config(raw))


@pytest.fixture
async def guarded(tmp_path: Path) -> Any:
    gw = with_env(raw_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}"))
    async with running(gw):
        yield gw


async def test_token_guards_metrics_and_status(guarded: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(guarded)) as client:
        for path in ("/metrics", "/v1/status"):
            assert (await client.get(path)).status_code == 401
            wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert wrong.headers["content-type"].startswith("application/problem+json")
            ok = await client.get(path, headers={"Authorization": f"Bearer {OPS_TOKEN}"})
            assert ok.status_code == 200
        api_token = {"Authorization": "Bearer api-token-for-tests"}
        api = await client.get("/v1/status", headers=api_token)
        assert api.status_code == 401  # the pull feed's token is not the operator's


async def test_page_signs_in_with_a_cookie_that_is_not_the_token(guarded: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(guarded)) as client:
        login = await client.get("/ops")
        assert login.status_code == 401 and "运维令牌" in login.text
        assert "form-action 'self'" in login.headers["content-security-policy"]
        wrong = await client.post("/ops/login", data={"token": "guess"})
        assert wrong.status_code == 401 and "令牌不正确 (wrong token)" in wrong.text
        assert COOKIE not in client.cookies
        signed = await client.post("/ops/login", data={"token": OPS_TOKEN})
        assert signed.status_code == 303 and signed.headers["location"] == "/ops"
        set_cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
        assert OPS_TOKEN not in set_cookie
        assert client.cookies[COOKIE] == cookie_value(OPS_TOKEN)
        page = await client.get("/ops")
        assert page.status_code == 200 and "民声网关" in page.text
        assert (await client.get("/v1/status")).status_code == 200  # the page's own fetch
        assert (await client.get("/metrics")).status_code == 200


async def test_kiosk_url_sets_the_cookie_and_drops_the_token(guarded: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(guarded)) as client:
        kiosk = await client.get("/ops", params={"token": OPS_TOKEN})
        assert kiosk.status_code == 303 and kiosk.headers["location"] == "/ops"
        assert (await client.get("/ops")).status_code == 200
    async with httpx.AsyncClient(base_url=base_url(guarded)) as client:
        assert (await client.get("/ops", params={"token": "guess"})).status_code == 401


async def test_static_files_are_the_page_s_own_only(guarded: Gateway) -> None:
    async with httpx.AsyncClient(base_url=base_url(guarded)) as client:
        script = await client.get("/ops/static/ops.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert (await client.get("/ops/static/ops.css")).status_code == 200
        for name in ("nope.js", "..%2Fops.py", "%2E%2E%2F%2E%2E%2Fpyproject.toml"):
            assert (await client.get(f"/ops/static/{name}")).status_code == 404


def _request(remote: str, headers: dict[str, str] | None = None) -> Any:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: (
        (remote, 40000) if key == "peername" else default)
    return make_mocked_request("GET", "/v1/status", headers=headers or {}, transport=transport)


def test_loopback_only_refuses_other_addresses_even_with_the_token() -> None:
    ops = OpsConfig.model_validate({"token": OPS_TOKEN, "loopback_only": True})
    bearer = {"Authorization": f"Bearer {OPS_TOKEN}"}
    assert refusal(_request("10.1.2.3", bearer), ops) == "loopback"
    assert refusal(_request("::1", bearer), ops) is None
    assert refusal(_request("127.0.0.1"), ops) == "token"
    open_to_all = OpsConfig.model_validate({"token": OPS_TOKEN, "loopback_only": False})
    assert refusal(_request("10.1.2.3", bearer), open_to_all) is None
    assert refusal(_request("10.1.2.3"), open_to_all) == "token"
    local = OpsConfig()
    assert refusal(_request("127.0.0.1"), local) is None
    assert refusal(_request("192.168.1.20"), local) == "loopback"


def test_ops_is_never_open_to_the_network_by_config() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"ops": {"loopback_only": False, "token": ""}})
    assert "ops: set ops.token or keep ops.loopback_only: true" in str(caught.value)


async def test_loopback_default_needs_no_token(tmp_path: Path) -> None:
    raw = raw_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", ops={})
    async with running(with_env(raw)) as gw, httpx.AsyncClient(base_url=base_url(gw)) as client:
        assert (await client.get("/v1/status")).status_code == 200
        assert (await client.get("/ops")).status_code == 200


# -- minsheng status ----------------------------------------------------------------------

def status_cli(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``minsheng status`` (the same click command, run as its module)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.status", "--config", str(config_path), *args],
        cwd=ROOT, env=subprocess_env(ENV), capture_output=True, text=True, timeout=120,
    )


async def _status_cli(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(status_cli, config_path, *args)


async def test_cli_status_live_then_from_the_store(tmp_path: Path, store_url: str) -> None:
    receiver = Receiver()
    await receiver.start()
    receiver.refuse(["refused-form"], status=422)  # a permanent refusal: a dead letter
    sink = {"name": "platform", "kind": "http", "url": receiver.url, "poll_interval_s": 0.1,
            "timeout_s": 2}
    raw = raw_config(tmp_path, store_url, sinks=[sink])
    path = write_config(tmp_path / "gateway.yaml", raw)
    try:
        async with running(with_env(raw)) as gw:
            async with httpx.AsyncClient(base_url=base_url(gw)) as client:
                sent = await client.post("/intake/web", json=GOOD,
                                         headers={"Idempotency-Key": "refused-form"})
                assert sent.status_code == 202
            await receiver.wait_for(lambda: len(receiver.requests) == 1)
            live = await _status_cli(path)
            as_json = await _status_cli(path, "--json")
        stored = await _status_cli(path)
    finally:
        await receiver.close()
    assert live.returncode == 1, live.stderr  # a dead letter needs attention
    assert "来自运行中的网关 live from http://127.0.0.1:" in live.stdout
    assert "需要关注 attention" in live.stdout and "死信 1 条 · 1 dead letter(s)" in live.stdout
    assert "web" in live.stdout and "正常 up" in live.stdout and "网上信箱 web" in live.stdout
    assert re.search(r"^platform +http +0 +— +0 +1$", live.stdout, re.MULTILINE)
    assert "死信 dead letters: 1" in live.stdout
    doc = json.loads(as_json.stdout)
    assert doc["sinks"][0]["dead"] == 1 and doc["sources"][0]["state"] == "up"
    assert stored.returncode == 1
    assert "网关未响应 gateway not reachable" in stored.stderr
    assert "直接读取存储 read from the store" in stored.stdout
    assert "未知 unknown" in stored.stdout and "死信 dead letters: 1" in stored.stdout
    assert "网上信箱 web" in stored.stdout  # the 24-hour volumes come from the store too
    assert OPS_TOKEN not in live.stdout + live.stderr + stored.stdout + stored.stderr


async def test_cli_status_all_well_exits_zero(tmp_path: Path) -> None:
    raw = raw_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}")
    path = write_config(tmp_path / "gateway.yaml", raw)
    async with running(with_env(raw)):
        result = await _status_cli(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "全部正常 all normal" in result.stdout


def test_cli_status_bad_config_exits_two(tmp_path: Path) -> None:
    path = write_config(tmp_path / "gateway.yaml", {"ops": {"loopback_only": False}})
    result = status_cli(path)
    assert result.returncode == 2
    assert "ops: set ops.token" in result.stderr


# -- held items: dead letters and quarantine show their age ------------------------------

HELD_DAYS = 9


async def test_dead_letters_and_quarantine_show_their_age(tmp_path: Path, store: Store) -> None:
    """Neither is ever purged: the status document gives each one's count and oldest age,
    and an alert line once the oldest is older than ``ops.held_warn_days``."""
    def fill(tx: Tx) -> None:
        outbox.enqueue(tx, ["platform"], None, "event", '{"e": 1}')
        outbox.enqueue(tx, ["platform"], None, "event", '{"e": 2}')
        for (oid,) in tx.fetchall("SELECT id FROM outbox"):
            outbox.dead_letter(tx, int(oid), "HTTP 422")
        quarantine.add(tx, "web", None, "normalizer_error", {"error": "x"})
        quarantine.add(tx, "web", None, "normalizer_error", {"error": "y"})
        old = time.time() - HELD_DAYS * 86400
        tx.execute("UPDATE outbox SET created_at = ? WHERE id = (SELECT MIN(id) FROM outbox)",
                   (old,))
        tx.execute("UPDATE quarantine SET created_at = ? WHERE id = "
                   "(SELECT MIN(id) FROM quarantine)", (old,))

    await store.write(fill)

    config = gateway_config(tmp_path, "sqlite:///unused.db")
    assert config.ops.held_warn_days == 7
    volumes = VolumeCache(config.ops.volume_days, config.tz)
    now = time.time()
    part = await store.read(lambda tx: store_view(tx, config, volumes, now))
    [sink] = [s for s in part["sinks"] if s["name"] == "platform"]
    day = 86400
    assert sink["dead"] == 2
    assert HELD_DAYS * day <= sink["oldest_dead_age_s"] < HELD_DAYS * day + 600
    assert part["dead_letters"] == 2
    assert part["dead_letters_oldest_age_s"] == sink["oldest_dead_age_s"]
    assert part["quarantine"]["open"] == 2
    assert HELD_DAYS * day <= part["quarantine"]["oldest_age_s"] < HELD_DAYS * day + 600
    doc = {"store": {"ok": True}, "sources": [], **part}
    problems = summarize(doc, config.ops)["problems"]
    assert {"level": "warning", "zh": "死信最久已存 9 天，超过 7 天",
            "en": "oldest dead letter held 9 days, over 7"} in problems
    assert {"level": "warning", "zh": "隔离区最久已存 9 天，超过 7 天",
            "en": "oldest quarantine entry held 9 days, over 7"} in problems
    patient = OpsConfig(held_warn_days=10)
    assert not [p for p in summarize(doc, patient)["problems"] if "held" in p["en"]]

    def resolve_old(tx: Tx) -> None:  # the old ones handled: the ages fall to the others'
        tx.execute("DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox)")
        [entry, _] = quarantine.list_open(tx)
        quarantine.resolve(tx, entry.id, "dropped")

    await store.write(resolve_old)
    part = await store.read(lambda tx: store_view(tx, config, volumes, time.time()))
    assert part["dead_letters"] == 1 and part["dead_letters_oldest_age_s"] < 600
    assert part["quarantine"] == {"open": 1, "oldest_age_s": part["quarantine"]["oldest_age_s"]}
    assert part["quarantine"]["oldest_age_s"] < 600
    assert not [p for p in summarize({**doc, **part}, config.ops)["problems"]
                if "held" in p["en"]]
