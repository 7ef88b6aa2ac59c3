"""The logs of a full intake run, as production writes them: a gateway subprocess with
secrets in its environment takes a realistic mix of submissions full of phone numbers,
e-mail addresses and ID-card numbers, forwards to a case platform that quotes them back
in its errors, and is stopped. Its stderr is then scanned: no personal data in clear, no
secret, every intake line with its request id and case code."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from tests import hostile_requests as hostile
from tests.pg import free_port
from tests.procs import GatewayProcess, write_config

SECRETS = {
    "MINSHENG_API_TOKEN": "api-Tk-4f9c2e7d1b",
    "MINSHENG_OPS_TOKEN": "ops-Tk-8a3e5c0f6d",
    "WEB_INTAKE_TOKEN": "web-Tk-2b7d9e1c4a",
    "SINK_SECRET": "sink-Hmac-6c1f0a9e3b",
    "SINK_PASSWORD": "pw-Basic-5e8b2d7c0f",
}
MOBILES = ["13800138000", "13912345678", "15088886666", "18612340000"]
FORMATTED = ["138-0013-8000", "139 1234 5678", "+86 150 8888 6666", "+8618612340000"]
LANDLINES = ["0532-88886666", "(010)12345678"]
EMAILS = ["wang.xiaoming@example.com", "lihua_88@mail.example.cn"]
ID_CARDS = ["110105199003071234", "37020219851231002X"]
PERSONAL = MOBILES + FORMATTED + LANDLINES + EMAILS + ID_CARDS
# What must never be seen, in any spelling found in a log line.
GENERIC = [
    re.compile(r"(?<![0-9A-Za-z])1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"),  # a mobile
    re.compile(r"(?<!\d)0\d{2,3}\)?[- ]?\d{7,8}(?!\d)"),  # a landline with its area code
    re.compile(r"[A-Za-z0-9._%+-]{2,}@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),  # an e-mail address
    re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"),  # an ID-card number
]


def _submissions() -> list[dict[str, Any]]:
    """Web-mailbox bodies as citizens write them: contact data in every field."""
    return [
        {"name": "王小明", "phone": MOBILES[0], "email": EMAILS[0], "subject": "噪音扰民",
         "content": f"我的电话 {FORMATTED[1]}，身份证 {ID_CARDS[0]}，邮箱 {EMAILS[1]}，"
                    f"楼下商铺深夜施工。", "address": "城阳区正阳路 88 号"},
        {"name": "李华", "phone": FORMATTED[2], "subject": "路灯不亮",
         "content": f"请回电 {LANDLINES[0]} 或 {LANDLINES[1]}，证件号 {ID_CARDS[1]}。"},
        {"anonymous": True, "content": f"举报人不愿透露姓名，联系 {FORMATTED[3]}。"},
        {"name": "赵", "phone": "1380013", "content": ""},  # rejected: a broken number
        {"name": "钱", "email": "not-an-email", "content": f"手机 {MOBILES[3]}"},
    ]


class QuotingPlatform:
    """A case platform that refuses every case and quotes the citizen's data back."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    async def _refuse(self, request: web.Request) -> web.Response:
        case = await request.json()
        reporter = case.get("reporter") or {}
        quoted = f"duplicate of a case from {reporter.get('phone')} {reporter.get('email')} " \
                 f"{ID_CARDS[0]}"
        return web.json_response({"error": quoted}, status=422)

    async def start(self) -> str:
        app = web.Application()
        app.add_routes([web.post("/cases", self._refuse)])
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}/cases"

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _config(tmp_path: Path, port: int, platform_url: str, fmt: str) -> dict[str, Any]:
    closed = free_port()  # nothing listens there: connection errors get logged too
    return {
        "data_dir": str(tmp_path / "var"),
        "server": {"listen": f"127.0.0.1:{port}"},
        "store": {"url": f"sqlite:///{tmp_path / 'gateway.db'}"},
        "api": {"token": "${MINSHENG_API_TOKEN}"},
        "ops": {"token": "${MINSHENG_OPS_TOKEN}"},
        "log": {"format": fmt, "level": "debug"},
        "sources": [{"name": "web", "adapter": "web_mailbox", "token": "${WEB_INTAKE_TOKEN}"}],
        "sinks": [
            {"name": "platform", "kind": "http", "url": platform_url, "secret": "${SINK_SECRET}",
             "poll_interval_s": 0.1, "retry": {"max_attempts": 2, "base_delay_s": 0.05}},
            {"name": "backup", "kind": "http", "poll_interval_s": 0.1, "timeout_s": 1,
             "url": f"http://ops:${{SINK_PASSWORD}}@127.0.0.1:{closed}/cases",
             "retry": {"max_attempts": 2, "base_delay_s": 0.05}},
        ],
    }


async def _drive(base: str) -> dict[str, str]:
    """Send the mix; returns the request id each answered intake was given."""
    auth = {"Authorization": f"Bearer {SECRETS['WEB_INTAKE_TOKEN']}"}
    ids: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for n, body in enumerate(_submissions()):
            answer = await client.post("/intake/web", json=body,
                                       headers={**auth, "Idempotency-Key": f"mix-{n}"})
            assert answer.status_code in (202, 422), answer.text
            ids[answer.headers["X-Request-Id"]] = answer.json().get("case_code", "")
        form = {"name": "孙", "phone": MOBILES[1], "content": f"表单提交，邮箱 {EMAILS[0]}"}
        answer = await client.post("/intake/web", data=form, headers=auth)
        ids[answer.headers["X-Request-Id"]] = answer.json()["case_code"]
        files = {"photo": ("现场.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")}
        answer = await client.post("/intake/web", data=form, files=files, headers=auth)
        ids[answer.headers["X-Request-Id"]] = answer.json()["case_code"]
        # A caller's own request id with a phone in it, a replay, wrong and leaked tokens.
        answer = await client.post("/intake/web", json=_submissions()[0],
                                   headers={**auth, "Idempotency-Key": "mix-0",
                                            "X-Request-Id": f"call-{MOBILES[2]}"})
        assert answer.json()["outcome"] == "replay"
        wrong = {"Authorization": f"Bearer {SECRETS['MINSHENG_API_TOKEN']}"}
        assert (await client.post("/intake/web", json=_submissions()[0],
                                  headers=wrong)).status_code == 401
        assert (await client.get("/v1/cases", headers=wrong)).status_code == 200
        ops = {"Authorization": f"Bearer {SECRETS['MINSHENG_OPS_TOKEN']}"}
        assert (await client.get("/v1/status", headers=ops)).status_code == 200
        assert (await client.get("/metrics", headers=ops)).status_code == 200
    return ids


async def _run(tmp_path: Path, fmt: str) -> tuple[str, dict[str, str]]:
    platform = QuotingPlatform()
    url = await platform.start()
    port = free_port()
    config = write_config(tmp_path / "gateway.yaml", _config(tmp_path, port, url, fmt))
    proc = GatewayProcess(config, tmp_path / "gateway.log", f"http://127.0.0.1:{port}",
                          env=SECRETS)
    proc.start()
    try:
        await proc.wait_ready()
        ids = await _drive(proc.base_url)
        await _wait_dead(proc.base_url, 2 * len({c for c in ids.values() if c}))
        assert proc.terminate() == 0
    finally:
        if proc.alive:
            proc.kill()
        await platform.close()
    return (tmp_path / "gateway.log").read_text(encoding="utf-8"), ids


async def _wait_dead(base: str, expected: int) -> None:
    """Until every delivery to both sinks has failed for good (and been logged)."""
    ops = {"Authorization": f"Bearer {SECRETS['MINSHENG_OPS_TOKEN']}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for _ in range(600):
            doc = (await client.get("/v1/status", headers=ops)).json()
            if doc["backlog"]["pending"] == 0 and doc["dead_letters"] == expected:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries did not all fail: {doc['sinks']}")


def _leaks(text: str) -> list[str]:
    found = [f"personal data {p!r}" for p in PERSONAL if p in text]
    found += [f"secret {name}" for name, value in SECRETS.items() if value in text]
    for pattern in GENERIC:
        found += [f"{pattern.pattern} matched {m!r}" for m in pattern.findall(text)]
    return found


async def test_json_logs_of_an_intake_run_leak_nothing(tmp_path: Path) -> None:
    log, ids = await _run(tmp_path, "json")
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # all JSON
    values = [json.dumps({k: v for k, v in line.items() if k != "request_id"},
                         ensure_ascii=False) for line in lines]
    assert _leaks("\n".join(values)) == []
    request_ids = [str(line.get("request_id", "")) for line in lines]
    assert _leaks("\n".join(r for r in request_ids if not re.fullmatch(r"[0-9a-f]{32}", r))) == []
    assert "call-150****6666" in request_ids  # a caller's id is masked, not dropped
    for secret in SECRETS.values():
        assert secret not in log
    # The platform's quotes were logged, masked: the scan above had something to find.
    failures = [line for line in lines if line["event"] == "delivery_failed"]
    assert any("138****8000" in json.dumps(f, ensure_ascii=False) for f in failures)
    assert any("110105********1234" in json.dumps(f, ensure_ascii=False) for f in failures)
    intakes = [line for line in lines if line["event"] == "intake"]
    assert len(intakes) == 8
    for line in intakes:
        assert line["request_id"] and line["source"] == "web" and line["level"] == "info"
        assert (line["case_code"] is not None) == (line["outcome"] != "rejected")
    logged = {line["request_id"]: line["case_code"] or "" for line in intakes}
    assert logged.items() >= ids.items()  # the ids the callers got back, with their codes


async def test_console_logs_are_readable_and_masked_too(tmp_path: Path) -> None:
    log, _ = await _run(tmp_path, "console")
    lines = [line for line in log.splitlines() if line.strip()]
    assert not any(line.lstrip().startswith("{") for line in lines)  # not JSON
    intake = [line for line in lines if "[info     ] intake " in line]
    assert len(intake) == 8 and all("request_id=" in line for line in intake)
    scanned = "\n".join(re.sub(r"request_id=[0-9a-f]{32}", "", line) for line in lines)
    assert _leaks(scanned) == []
    assert "138****8000" in log


# -- every error path of the HTTP edge ----------------------------------------------------

EDGE_SECRETS = {**SECRETS, "IVR_TOKEN": "ivr-Tk-7c2e9a4f1d", "FS_PASSWORD": "fs-Pw-3b8d1f6a2c",
                "HMAC_SECRET": "hmac-Sk-9e4a7c1b5d", "CTI_TOKEN": "cti-Tk-5f2b8e0c7a",
                "TWILIO_TOKEN": "tw-Tk-1d6c3a9e8b"}


def _edge_config(tmp_path: Path, port: int, fmt: str) -> dict[str, Any]:
    """Web mailbox and one hotline source per authentication scheme."""
    def hotline(name: str, phone_format: str, **auth: str) -> dict[str, Any]:
        return {"name": name, "adapter": "cdr_webhook", "format": phone_format, "auth": auth,
                "notes_auth": {"scheme": "bearer", "token": "${IVR_TOKEN}"},
                "ops_token": "${MINSHENG_OPS_TOKEN}"}

    return {
        "data_dir": str(tmp_path / "var"),
        "server": {"listen": f"127.0.0.1:{port}"},
        "store": {"url": f"sqlite:///{tmp_path / 'gateway.db'}"},
        "api": {"token": "${MINSHENG_API_TOKEN}"},
        "ops": {"token": "${MINSHENG_OPS_TOKEN}"},
        "log": {"format": fmt, "level": "debug"},
        "sources": [
            {"name": "web", "adapter": "web_mailbox", "token": "${WEB_INTAKE_TOKEN}"},
            hotline("hotline", "generic_json", scheme="bearer", token="${IVR_TOKEN}"),
            hotline("hotline-fs", "freeswitch_json", scheme="basic", username="fs",
                    password="${FS_PASSWORD}"),
            hotline("hotline-hmac", "generic_json", scheme="hmac", secret="${HMAC_SECRET}"),
            hotline("hotline-cti", "zammad_cti", scheme="path_token", token="${CTI_TOKEN}"),
            hotline("hotline-twilio", "twilio", scheme="twilio", auth_token="${TWILIO_TOKEN}"),
        ],
        "sinks": [{"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl")}],
    }


async def _run_hostile(tmp_path: Path, fmt: str) -> str:
    """A gateway subprocess (with one buggy route) takes every hostile request; its output."""
    port = free_port()
    config = write_config(tmp_path / "gateway.yaml", _edge_config(tmp_path, port, fmt))
    proc = GatewayProcess(config, tmp_path / "gateway.log", f"http://127.0.0.1:{port}",
                          env=EDGE_SECRETS, module="tests.gateway_with_a_bug")
    secrets = hostile.Secrets(web=SECRETS["WEB_INTAKE_TOKEN"], bearer=EDGE_SECRETS["IVR_TOKEN"],
                              ops=SECRETS["MINSHENG_OPS_TOKEN"],
                              api=SECRETS["MINSHENG_API_TOKEN"])
    proc.start()
    try:
        await proc.wait_ready()
        for request in hostile.every_request(secrets):
            await hostile.send(port, request)
        assert proc.terminate() == 0
    finally:
        if proc.alive:
            proc.kill()
    return (tmp_path / "gateway.log").read_text(encoding="utf-8")


async def test_no_error_path_of_the_edge_logs_personal_data(tmp_path: Path) -> None:
    log = await _run_hostile(tmp_path, "json")
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # all JSON
    scanned = [json.dumps({k: v for k, v in line.items()
                           if not (k == "request_id" and re.fullmatch(r"[0-9a-f]{32}", v))},
                          ensure_ascii=False) for line in lines]
    assert _leaks("\n".join(scanned)) == []
    assert not [p for p in hostile.PERSONAL_SENT if p in log]
    assert not [name for name, value in EDGE_SECRETS.items() if value in log]
    # Requests aiohttp could not parse were logged (by the edge's own handler, which names
    # the error type and never quotes the raw bytes), and the handler's traceback went
    # through the masking: there was something to find, and it was found masked.
    assert any(line["event"] == "http_protocol_error" for line in lines)
    bug = [line for line in lines if "a bug while handling" in line.get("traceback", "")]
    assert bug and "138****8000" in bug[0]["traceback"]
    assert "w***@example.com" in bug[0]["traceback"]


async def test_console_error_lines_are_masked_too(tmp_path: Path) -> None:
    log = await _run_hostile(tmp_path, "console")
    scanned = re.sub(r"request_id=[0-9a-f]{32}", "", log)
    assert _leaks(scanned) == []
    assert "http_protocol_error" in log and "138****8000" in log
