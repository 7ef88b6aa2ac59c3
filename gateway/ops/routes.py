"""What operations see: ``GET /metrics``, ``GET /v1/status`` and the status page ``/ops``.

All three are protected by ``ops`` in the config: the operator token (``Authorization:
Bearer``, or the page's cookie set by ``POST /ops/login`` or ``/ops?token=…``) and/or
loopback only. The status page is served by the gateway itself (``gateway/ops/static``)
and asks nothing of the network; its data is ``/v1/status``, refreshed by itself.

``/v1/status`` puts together what this process knows (sources, deliveries) with a
snapshot of the store (sinks, backlog, dead letters, quarantine, volumes per channel,
latest rejections, largest clusters, phone KPIs), cached for ``ops.cache_s``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.intake.health import DEGRADED, DISABLED, DOWN
from gateway.ops.metrics import CONTENT_TYPE, call_optional, channel_of
from gateway.ops.running import RunningGateway
from gateway.store import Tx, journal, outbox, quarantine
from gateway.store.ops_queries import VolumeCache
from gateway.support import problem
from gateway.support.config import GatewayConfig, OpsConfig
from gateway.support.logging import mask_text
from gateway.support.tokens import bearer_ok, same_secret

STATIC_DIR = Path(__file__).parent / "static"
COOKIE = "minsheng_ops"
CLUSTER_WINDOW_S = 86400.0
_MEDIA = {".html": "text/html", ".css": "text/css", ".js": "text/javascript",
          ".svg": "image/svg+xml", ".png": "image/png"}
# No external request can leave the page, whatever its script does.
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- access ------------------------------------------------------------------------------

def cookie_value(token: str) -> str:
    """The page's cookie: derived from the token, so the cookie is not the token itself."""
    return hmac.new(token.encode(), b"minsheng-ops-page", hashlib.sha256).hexdigest()


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def refusal(request: web.Request, ops: OpsConfig) -> str | None:
    """Why ``request`` may not see the ops views (``"loopback"``, ``"token"``), or None."""
    if ops.loopback_only and not _is_loopback(request.remote):
        return "loopback"
    if ops.token is None:
        return None
    token = ops.token.get_secret_value()
    if bearer_ok(request, token) or same_secret(request.cookies.get(COOKIE), cookie_value(token)):
        return None
    return "token"


def _refused(why: str) -> web.Response:
    if why == "loopback":
        return problem.problem(403, "loopback-only", "仅限本机访问 (loopback only)",
                               "ops.loopback_only is set: use this machine or the token")
    return problem.unauthorized("the operator token is required (Authorization: Bearer)")


# -- the status document -----------------------------------------------------------------

def as_plain(row: Any) -> Any:
    """A row of another module (dataclass, mapping, named tuple) as plain JSON data."""
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if isinstance(row, Mapping):
        return dict(row)
    if hasattr(row, "_asdict"):
        return row._asdict()
    return row


def latest_rejections(tx: Tx, limit: int) -> list[dict[str, Any]]:
    return [{
        "raw_id": e.id, "at": e.record.received_at.timestamp(), "source": e.record.source,
        "channel": e.record.channel,
        "reasons": [{k: r.get(k) for k in ("field", "code", "zh", "en")}
                    for r in (e.detail or []) if isinstance(r, dict)],
    } for e in journal.latest(tx, journal.REJECTED, limit)]


def store_view(tx: Tx, config: GatewayConfig, volumes: VolumeCache, now: float) -> dict[str, Any]:
    """Everything the store says for the status views, in one read transaction."""
    stats = outbox.stats(tx)
    names = [s.name for s in config.sinks if s.enabled]
    names += sorted(set(stats) - set(names))
    kinds = {s.name: s.kind for s in config.sinks}
    sinks = [{"name": n, "kind": kinds.get(n, "?"), "pending": 0, "delivered": 0, "dead": 0,
              "oldest_pending_age_s": 0.0, "oldest_dead_age_s": 0.0, **stats.get(n, {})}
             for n in names]
    held = quarantine.open_summary(tx)
    volumes.refresh(tx, now)
    clusters = call_optional("gateway.store.dedup_index", "top_clusters", tx,
                             now - CLUSTER_WINDOW_S, config.ops.clusters_shown)
    kpis = call_optional("adapters.cdr_webhook.flow", "kpis", tx, now)
    return {
        "sinks": sinks,
        "backlog": {"pending": sum(s["pending"] for s in sinks),
                    "oldest_pending_age_s": max([0.0, *(s["oldest_pending_age_s"]
                                                        for s in sinks)])},
        "dead_letters": sum(s["dead"] for s in sinks),
        "dead_letters_oldest_age_s": max([0.0, *(s["oldest_dead_age_s"] for s in sinks)]),
        "quarantine": {"open": held.open, "oldest_age_s": held.oldest_age_s},
        "volumes": volumes.view(now),
        "rejections": latest_rejections(tx, config.ops.rejections_shown),
        "clusters": None if clusters is None else [as_plain(c) for c in clusters],
        "calls": None if kpis is None else dict(kpis),
    }


def sources_view(gateway: RunningGateway) -> list[dict[str, Any]]:
    counts = gateway.intake.counts
    rows = []
    for name, state in sorted(gateway.status.sources.items()):
        row = state.as_json()
        row["last_error_text"] = mask_text(row["last_error_text"])
        row["reason"] = mask_text(row["reason"])
        row["channel"] = channel_of(gateway, name)
        row["counts"] = {o: n for (s, o), n in sorted(counts.items()) if s == name}
        rows.append(row)
    return rows


def _problem(level: str, zh: str, en: str) -> dict[str, str]:
    return {"level": level, "zh": zh, "en": en}


def summarize(doc: dict[str, Any], ops: OpsConfig) -> dict[str, Any]:
    """Overall state (ok / warning / critical) and the problems behind it, worst first."""
    found = []
    if not doc["store"]["ok"]:
        found.append(_problem("critical", "存储不可用", "store unreachable"))
    for s in doc["sources"]:
        if s["state"] in (DOWN, DISABLED, DEGRADED):
            level = "critical" if s["critical"] and s["state"] != DEGRADED else "warning"
            found.append(_problem(level, f"来源 {s['name']} {ZH_STATE[s['state']]}",
                                  f"source {s['name']} {s['state']}"))
    if doc.get("backlog", {}).get("oldest_pending_age_s", 0) > ops.backlog_warn_s:
        minutes = round(doc["backlog"]["oldest_pending_age_s"] / 60)
        found.append(_problem("warning", f"积压最久 {minutes} 分钟",
                              f"oldest undelivered entry {minutes} min old"))
    if doc.get("dead_letters"):
        found.append(_problem("warning", f"死信 {doc['dead_letters']} 条",
                              f"{doc['dead_letters']} dead letter(s)"))
    if doc.get("quarantine", {}).get("open"):
        n = doc["quarantine"]["open"]
        found.append(_problem("warning", f"隔离区 {n} 条待处理", f"{n} in quarantine"))
    found += held_too_long(doc, ops.held_warn_days)
    found.sort(key=lambda p: p["level"] != "critical")
    state = found[0]["level"] if found else "ok"
    return {"state": state, "problems": found}


def held_too_long(doc: dict[str, Any], warn_days: float) -> list[dict[str, str]]:
    """A problem for dead letters and for quarantine whose oldest entry is older than
    ``warn_days``: neither is ever purged, so personal data in them must not age unseen."""
    found = []
    ages = (("死信", "dead letter", doc.get("dead_letters_oldest_age_s", 0.0)),
            ("隔离区", "quarantine entry", doc.get("quarantine", {}).get("oldest_age_s", 0.0)))
    for zh, en, age in ages:
        if age > warn_days * 86400:
            days = int(age // 86400)
            found.append(_problem("warning", f"{zh}最久已存 {days} 天，超过 {warn_days:g} 天",
                                  f"oldest {en} held {days} days, over {warn_days:g}"))
    return found


ZH_STATE = {"up": "正常", "degraded": "降级", "down": "中断", "standby": "待命",
            "disabled": "已停用", "starting": "启动中"}


class OpsView:
    """The status document of one gateway, with its store part cached for a moment."""

    def __init__(self, gateway: RunningGateway) -> None:
        self.gateway = gateway
        self.volumes = VolumeCache(gateway.config.ops.volume_days, gateway.config.tz)
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def _store_part(self, now: float) -> dict[str, Any]:
        async with self._lock:
            if self._cached and now - self._cached[0] < self.gateway.config.ops.cache_s:
                return self._cached[1]
            config, volumes = self.gateway.config, self.volumes
            part = await self.gateway.store.read(lambda tx: store_view(tx, config, volumes, now))
            self._cached = (now, part)
            return part

    async def document(self) -> dict[str, Any]:
        gw, now = self.gateway, time.time()
        doc: dict[str, Any] = {
            "generated_at": now,
            "gateway": {"started": gw.started, "region": gw.config.region_code,
                        "timezone": gw.config.timezone,
                        "refresh_s": gw.config.ops.refresh_s,
                        "backlog_warn_s": gw.config.ops.backlog_warn_s,
                        "held_warn_days": gw.config.ops.held_warn_days},
            "store": {"engine": gw.store.engine, "ok": True},
            "sources": sources_view(gw),
        }
        try:
            doc.update(await self._store_part(now))
        except Exception as exc:  # the page must still show what the process knows
            doc["store"] = {"engine": gw.store.engine, "ok": False, "error": str(exc)}
        forwarder = getattr(gw, "forwarder", None)
        for sink in doc.get("sinks", []):
            sink["delivered_here"] = forwarder.delivered.get(sink["name"], 0) if forwarder else 0
            sink["failed_here"] = forwarder.failed.get(sink["name"], 0) if forwarder else 0
        doc["summary"] = summarize(doc, gw.config.ops)
        return doc


# -- handlers ----------------------------------------------------------------------------

def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, ensure_ascii=False, default=str), status=status,
                        content_type="application/json", headers={"Cache-Control": "no-store"})


def _static(name: str, status: int = 200, replace: tuple[str, str] | None = None) -> web.Response:
    path = STATIC_DIR / name
    text = path.read_text(encoding="utf-8")
    if replace is not None:
        text = text.replace(*replace)
    return web.Response(text=text, status=status, content_type=_MEDIA[path.suffix],
                        headers={"Cache-Control": "no-cache", "Content-Security-Policy": _CSP,
                                 "X-Content-Type-Options": "nosniff"})


def _login_page(status: int, message: str = "") -> web.Response:
    return _static("login.html", status, ("<!--MESSAGE-->", message))


class OpsHandlers:
    def __init__(self, gateway: RunningGateway) -> None:
        self.gateway = gateway
        self.view = OpsView(gateway)
        self.static_names = {p.name for p in STATIC_DIR.iterdir() if p.suffix in _MEDIA}

    @property
    def ops(self) -> OpsConfig:
        return self.gateway.config.ops

    def guarded(self, handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            why = refusal(request, self.ops)
            return _refused(why) if why else await handler(request)
        return run

    async def metrics(self, request: web.Request) -> web.Response:
        body = await self.gateway.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def status(self, request: web.Request) -> web.Response:
        return _json(await self.view.document())

    async def page(self, request: web.Request) -> web.StreamResponse:
        why = refusal(request, self.ops)
        if why == "loopback":
            return _refused(why)
        offered = request.query.get("token")
        if offered is not None:  # a kiosk URL: keep the token out of the address bar
            return self._login(offered)
        if why == "token":
            return _login_page(401)
        return _static("index.html")

    async def login(self, request: web.Request) -> web.StreamResponse:
        if refusal(request, self.ops) == "loopback":
            return _refused("loopback")
        try:
            form = await request.post()
        except ValueError as exc:  # a body that is no form (multipart without a boundary…)
            return problem.problem(
                400, "malformed-form", "登录表单无法解析 (the login form cannot be read)",
                f"send token as application/x-www-form-urlencoded ({type(exc).__name__})",
            )
        return self._login(str(form.get("token", "")))

    def _login(self, offered: str) -> web.StreamResponse:
        token = self.ops.token
        response = web.Response(status=303, headers={"Location": "/ops"})
        if token is None:
            return response
        if not same_secret(offered, token.get_secret_value()):
            return _login_page(401, "令牌不正确 (wrong token)")
        response.set_cookie(COOKIE, cookie_value(token.get_secret_value()), httponly=True,
                            samesite="Strict", path="/", max_age=400 * 86400)
        return response

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.static_names:
            raise web.HTTPNotFound()
        return _static(name)


def setup(app: web.Application, gateway: RunningGateway) -> None:
    """Mount the ops routes on the gateway's application."""
    handlers = OpsHandlers(gateway)
    app.add_routes([
        web.get("/metrics", handlers.guarded(handlers.metrics)),
        web.get("/v1/status", handlers.guarded(handlers.status)),
        web.get("/ops", handlers.page),
        web.post("/ops/login", handlers.login),
        web.get("/ops/static/{name}", handlers.static),
    ])
