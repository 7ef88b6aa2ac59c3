"""The gateway the fuzzers attack: a real ``minsheng run`` subprocess on a free loopback
port with the web mailbox and four hotline sources, each with real credentials, and the
signer that lets a fuzzed request past them (so the fuzzers reach the parsers, not only
the 401s).

=================  ===============  =========================================
source             format           authentication
=================  ===============  =========================================
web                web_mailbox      bearer token
citizen            web_mailbox      none: the public citizen page (``GET /``)
hotline-json       generic_json     HMAC signature of the body
hotline-fs         freeswitch_json  HTTP basic
hotline-cti        zammad_cti       path token
hotline-twilio     twilio           X-Twilio-Signature (notes: bearer)
=================  ===============  =========================================
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from adapters.cdr_webhook.auth import twilio_signature
from gateway.store import quarantine
from tests.conftest import started_store
from tests.pg import free_port
from tests.procs import GatewayProcess, write_config

# Secrets reach the gateway through the environment, as in production.
SECRETS = {
    "FUZZ_API_TOKEN": "fuzz-api-token", "FUZZ_OPS_TOKEN": "fuzz-ops-token",
    "FUZZ_WEB_TOKEN": "fuzz-web-token", "FUZZ_HMAC_SECRET": "fuzz-hmac-secret",
    "FUZZ_FS_PASSWORD": "fuzz-fs-password", "FUZZ_CTI_TOKEN": "fuzz-cti-path-token",
    "FUZZ_TWILIO_TOKEN": "fuzz-twilio-auth-token", "FUZZ_DESK_TOKEN": "fuzz-desk-token",
}
CTI_TOKEN = SECRETS["FUZZ_CTI_TOKEN"]
HOTLINE_FORMATS = {"hotline-json": "generic_json", "hotline-fs": "freeswitch_json",
                   "hotline-cti": "zammad_cti", "hotline-twilio": "twilio"}
AUTH = {
    "hotline-json": {"scheme": "hmac", "secret": "${FUZZ_HMAC_SECRET}"},
    "hotline-fs": {"scheme": "basic", "username": "freeswitch",
                   "password": "${FUZZ_FS_PASSWORD}"},
    "hotline-cti": {"scheme": "path_token", "token": "${FUZZ_CTI_TOKEN}"},
    "hotline-twilio": {"scheme": "twilio", "auth_token": "${FUZZ_TWILIO_TOKEN}"},
}


def fuzz_config(tmp_path: Path, port: int) -> dict[str, Any]:
    """The raw config: SQLite, a JSONL sink, the six sources, every token set."""
    hotlines = [{
        "name": name, "adapter": "cdr_webhook", "format": fmt, "auth": AUTH[name],
        "missed_calls": "callback", "ops_token": "${FUZZ_OPS_TOKEN}",
        **({"notes_auth": {"scheme": "bearer", "token": "${FUZZ_DESK_TOKEN}"}}
           if name == "hotline-twilio" else {}),
    } for name, fmt in HOTLINE_FORMATS.items()]
    return {
        "region_code": "CY",
        "data_dir": str(tmp_path / "var"),
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_timeout_s": 5},
        "store": {"url": f"sqlite:///{tmp_path / 'gateway.db'}"},
        "api": {"token": "${FUZZ_API_TOKEN}"},
        "ops": {"token": "${FUZZ_OPS_TOKEN}"},
        "log": {"format": "json", "level": "warning"},
        "sources": [{"name": "web", "adapter": "web_mailbox", "token": "${FUZZ_WEB_TOKEN}"},
                    {"name": "citizen", "adapter": "web_mailbox"}, *hotlines],
        "sinks": [{"name": "file", "kind": "jsonl", "path": str(tmp_path / "cases.jsonl")}],
        "open311": {"jurisdiction_id": "cy.example", "services": [
            {"code": "sanitation", "name": "环境卫生 Sanitation", "group": "城乡建设",
             "categories": ["城乡建设"]}]},
    }


@dataclass(frozen=True)
class FuzzGateway:
    base_url: str
    store_url: str
    process: GatewayProcess

    def open_quarantine(self) -> list[quarantine.QuarantineEntry]:
        """What the run left in the quarantine (read through the store, as the CLI does)."""
        async def read() -> list[quarantine.QuarantineEntry]:
            async with started_store(self.store_url) as store:
                return await store.read(quarantine.list_open)
        return asyncio.run(read())


@contextmanager
def running_gateway(tmp_path: Path) -> Iterator[FuzzGateway]:
    port = free_port()
    config = write_config(tmp_path / "fuzz.yaml", fuzz_config(tmp_path, port))
    process = GatewayProcess(config, tmp_path / "gateway.log", f"http://127.0.0.1:{port}",
                             env=SECRETS)
    process.start()
    try:
        asyncio.run(process.wait_ready())
        yield FuzzGateway(process.base_url, f"sqlite:///{tmp_path / 'gateway.db'}", process)
    finally:
        process.terminate()


def credentials(method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    """The headers that let this request past its route's authentication: what the
    source's phone system, desk or operator would add (nothing for an unknown path)."""
    path = urlsplit(url).path
    bearer = _bearer_secret(path)
    if bearer is not None:
        return {"Authorization": f"Bearer {SECRETS[bearer]}"}
    if path.startswith("/intake/hotline-json"):
        stamp = str(int(time.time()))
        mac = hmac.new(SECRETS["FUZZ_HMAC_SECRET"].encode(), f"{stamp}.".encode() + body,
                       hashlib.sha256)
        return {"X-Minsheng-Signature": f"t={stamp},v1={mac.hexdigest()}"}
    if path.startswith("/intake/hotline-fs"):
        basic = base64.b64encode(f"freeswitch:{SECRETS['FUZZ_FS_PASSWORD']}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    if path.startswith("/intake/hotline-twilio"):
        return {"X-Twilio-Signature": _twilio(url, headers, body)}
    return {}


def _bearer_secret(path: str) -> str | None:
    """The secret of a route that takes a bearer token, or None."""
    if path.startswith("/v1/cases"):
        return "FUZZ_API_TOKEN"
    if path.startswith(("/v1/status", "/metrics")) or path.endswith(
            ("/calls/stats", "/calls/overdue")):
        return "FUZZ_OPS_TOKEN"
    if path.startswith("/intake/web"):
        return "FUZZ_WEB_TOKEN"
    if path.startswith("/intake/hotline-twilio") and path.endswith("/notes"):
        return "FUZZ_DESK_TOKEN"
    return None


def _twilio(url: str, headers: Mapping[str, str], body: bytes) -> str:
    media = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    form = media.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
    params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True) if form else []
    return twilio_signature(SECRETS["FUZZ_TWILIO_TOKEN"], url, params)

