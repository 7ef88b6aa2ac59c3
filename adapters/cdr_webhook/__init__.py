"""Phone hotline (热线电话): CDRs and call events pushed by the phone system, and the
agent desktop's call notes, joined into one phone complaint per call (docs/phone.md).

Routes (``/<token>`` after the source name when ``auth.scheme`` is ``path_token``):

- ``POST /intake/<source>`` — a CDR or call event in the source's ``format``
  (``generic_json``, ``freeswitch_json``, ``zammad_cti``, ``twilio``);
- ``POST /intake/<source>/calls/<call_id>/notes`` — the agent's notes for a call
  (authenticated with ``notes_auth``, or ``auth`` when that is not given);
- ``GET /intake/<source>/calls/stats`` and ``…/calls/overdue`` — KPIs and calls waiting
  for notes, for operations (``Authorization: Bearer <ops_token>``).

A handler authenticates, bounds the body, then hands the raw record to ``CallFlow``,
which journals it and joins it to its call before the answer is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from adapters.cdr_webhook import call_store as store_calls
from adapters.cdr_webhook import openapi
from adapters.cdr_webhook.auth import Authenticator, AuthOptions, Refusal
from adapters.cdr_webhook.flow import CallFlow, CallPolicy, CallResult, Parser, hotline_stats
from gateway.intake.body_budget import BodyBudget, BudgetExhausted, read_bounded
from gateway.intake.openapi import ApiPart
from gateway.intake.sources import Adapter, AdapterEnv
from gateway.model.audit_action import ACTOR_OPS, AuditAction
from gateway.model.errors import ConfigError
from gateway.model.input_limits import InputLimits
from gateway.model.schema import RawRecord
from gateway.model.timespan import parse_since
from gateway.support import problem
from gateway.support.config import SourceConfig
from gateway.support.logging import get_logger
from gateway.support.query import whole_number
from normalizers.hotline.freeswitch_json import FreeswitchOptions

if TYPE_CHECKING:
    from gateway.intake.pipeline import Flow, Intake

log = get_logger("adapters.cdr_webhook")
PARSERS = {
    "generic_json": "normalizers.hotline.generic_json:parse",
    "freeswitch_json": "normalizers.hotline.freeswitch_json:parse",
    "zammad_cti": "normalizers.hotline.zammad_cti:parse",
    "twilio": "normalizers.hotline.twilio:parse",
}
NOTES_PARSER = "normalizers.hotline.call_notes:parse"
MAX_THRESHOLD_S = 3600  # ?threshold= of /calls/stats: seconds a caller waits, at most 1 h
STATUS_BY_OUTCOME = {"erased": 200, "new": 202, "updated": 200, "replay": 200, "recorded": 202,
                     "ignored": 200, "quarantined": 202}


class CdrWebhookOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth: AuthOptions
    notes_auth: AuthOptions | None = None
    max_body_kb: int = Field(default=512, ge=1, le=65536)
    missed_calls: Literal["callback", "count"] = "count"
    notes_timeout_min: float = Field(default=30.0, gt=0)
    ops_token: SecretStr | None = None
    overdue_check_s: float = Field(default=60.0, gt=0)
    freeswitch: FreeswitchOptions = Field(default_factory=FreeswitchOptions)
    limits: InputLimits = Field(default_factory=InputLimits)

    @model_validator(mode="after")
    def _notes_can_sign(self) -> CdrWebhookOptions:
        if (self.notes_auth or self.auth).scheme == "twilio":
            raise ValueError("notes_auth: the agent desktop cannot sign as Twilio; give "
                             "notes_auth (bearer, basic, hmac or path_token)")
        return self


def load_parser(target: str) -> Parser:
    module, _, attr = target.partition(":")
    parser: Parser = getattr(importlib.import_module(module), attr)
    return parser


def answer(result: CallResult) -> web.Response:
    """The HTTP answer for what became of a record; a retry of a bad one gets the same."""
    if result.outcome == "rejected":
        return problem.rejected(result.errors)
    return web.json_response(result.as_json(), status=STATUS_BY_OUTCOME[result.outcome],
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


class CdrWebhookSource(Adapter[CdrWebhookOptions]):
    channel = "phone"
    default_format = "generic_json"

    def __init__(self, config: SourceConfig, options: Any, env: AdapterEnv) -> None:
        super().__init__(config, options, env)
        self.format = config.format or self.default_format
        if self.format not in PARSERS:
            raise ConfigError([f"source {self.name}: format {self.format!r} is not a phone "
                               f"format (one of {', '.join(PARSERS)})"])
        self.max_body = self.options.max_body_kb * 1024
        self.budget = BodyBudget(self.options.limits)
        max_fields = self.options.limits.max_form_fields
        self.auth = Authenticator(self.options.auth, max_fields=max_fields)
        self.notes_auth = Authenticator(self.options.notes_auth or self.options.auth,
                                        max_fields=max_fields)
        token = self.options.ops_token
        self.ops_auth = Authenticator(AuthOptions(scheme="bearer", token=token)) if token else None
        self.policy = CallPolicy(self.options.missed_calls, self.options.notes_timeout_min * 60)
        self.flow_: CallFlow | None = None
        self._monitor: asyncio.Task[None] | None = None

    @classmethod
    def open_routes(cls, options: Any) -> list[str]:
        """``auth`` (or ``notes_auth``) with scheme none: anyone may post call records,
        and with ``missed_calls: callback`` file a callback case for any number."""
        assert isinstance(options, CdrWebhookOptions)
        open_to = []
        if options.auth.scheme == "none":
            open_to.append("call records")
        if (options.notes_auth or options.auth).scheme == "none":
            open_to.append("agents' notes")
        return [f"auth scheme none lets anyone post {' and '.join(open_to)}"] if open_to else []

    # -- routes ----------------------------------------------------------------------

    def flow(self, intake: Intake) -> Flow:
        """The call join; also what `minsheng quarantine reprocess` hands records back to."""
        if self.flow_ is None:
            self.flow_ = CallFlow(intake, self.name, intake.bindings[self.name].context,
                                  self.policy)
        flow = self.flow_
        parse, parse_notes = load_parser(PARSERS[self.format]), load_parser(NOTES_PARSER)

        async def again(raw: RawRecord) -> CallResult:
            kind = raw.metadata.get("kind")
            return await flow.submit(raw, parse_notes if kind == "notes" else parse)

        return again

    def routes(self, intake: Intake) -> list[web.RouteDef]:
        self.flow(intake)
        assert self.flow_ is not None
        flow = self.flow_
        parse, parse_notes = load_parser(PARSERS[self.format]), load_parser(NOTES_PARSER)

        async def events(request: web.Request) -> web.StreamResponse:
            return await self.receive(request, flow, self.auth, parse, {"kind": "event"})

        async def notes(request: web.Request) -> web.StreamResponse:
            call_id = request.match_info["call_id"][:200]
            return await self.receive(request, flow, self.notes_auth, parse_notes,
                                      {"kind": "notes", "call_id": call_id})

        base = f"/intake/{self.name}"
        return [
            web.post(base + ("/{token}" if self.auth.options.in_path else ""), events),
            web.post(base + ("/{token}" if self.notes_auth.options.in_path else "")
                     + "/calls/{call_id}/notes", notes),
            web.get(base + "/calls/stats", self.stats),
            web.get(base + "/calls/overdue", self.overdue),
        ]

    async def receive(self, request: web.Request, flow: CallFlow, auth: Authenticator,
                      parse: Parser, metadata: dict[str, Any]) -> web.StreamResponse:
        """Authenticate → bound the body (size, then the budget) → journal and join
        (CallFlow) → answer."""
        if not auth.needs_body and (refusal := auth.check(request)) is not None:
            return self._refuse(request, refusal)
        if (request.content_length or 0) > self.max_body:
            return self._too_large()
        try:
            async with self.budget.hold(request.content_length or self.max_body):
                return await self._take(request, flow, auth, parse, metadata)
        except BudgetExhausted:
            self.refusals["busy"] += 1
            return self.budget.busy()

    async def _take(self, request: web.Request, flow: CallFlow, auth: Authenticator,
                    parse: Parser, metadata: dict[str, Any]) -> web.StreamResponse:
        body = await read_bounded(request, self.max_body)
        if body is None:
            return self._too_large()
        if auth.needs_body and (refusal := auth.check(request, body)) is not None:
            return self._refuse(request, refusal)
        raw = RawRecord(
            channel="phone", source=self.name, source_ref=f"{self.format}-{uuid.uuid4().hex}",
            payload=body, content_type=request.headers.get("Content-Type", ""),
            received_at=datetime.now(UTC),
            metadata={**metadata, "remote": request.remote or "",
                      "user_agent": request.headers.get("User-Agent", "")[:200],
                      "query": dict(request.query)},
        )
        return answer(await flow.submit(raw, parse))

    def _refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        self.refusals[refusal.reason] += 1
        log.warning("auth_refused", source=self.name, reason=refusal.reason,
                    remote=request.remote, refused=sum(self.refusals.values()))
        if refusal.status == 403:
            return problem.problem(403, "forbidden", "拒绝访问 (forbidden)", refusal.detail)
        if refusal.status == 400:
            return problem.problem(400, "bad-request", "请求无效 (invalid request)",
                                   refusal.detail)
        response = problem.unauthorized(refusal.detail)
        if self.options.auth.scheme == "basic":
            response.headers["WWW-Authenticate"] = f'Basic realm="{self.name}"'
        return response

    def _too_large(self) -> web.Response:
        return problem.too_large(self.max_body, "max_body_kb")

    # -- operations ------------------------------------------------------------------

    def _ops_refusal(self, request: web.Request) -> web.Response | None:
        if self.ops_auth is None:
            return problem.problem(403, "ops-disabled", "运营接口未启用 (operations API disabled)",
                                   f"set ops_token in the {self.name} source's config")
        if (refusal := self.ops_auth.check(request)) is not None:
            return self._refuse(request, refusal)
        return None

    async def stats(self, request: web.Request) -> web.Response:
        if (refusal := self._ops_refusal(request)) is not None:
            return refusal
        assert self.flow_ is not None
        now = datetime.now(UTC)
        try:
            since = parse_since(request.query.get("since", "24h"), self.env.timezone, now)
            threshold = whole_number(request.query.get("threshold", "15"), 0, MAX_THRESHOLD_S)
        except ValueError as exc:  # names the parameter: since or threshold
            return problem.problem(422, "bad-parameter", "参数无效 (invalid parameter)",
                                   f"since/threshold: {exc}")
        rows = await self.flow_.intake.store.read(lambda tx: store_calls.kpi_rows(
            tx, since.timestamp(), now.timestamp(), self.name))
        body = {"source": self.name, "since": since.isoformat(), "until": now.isoformat(),
                **hotline_stats(rows, now.timestamp(), threshold).as_json(),
                "auth_refused": dict(self.refusals)}
        return web.json_response(body)

    async def overdue(self, request: web.Request) -> web.Response:
        if (refusal := self._ops_refusal(request)) is not None:
            return refusal
        assert self.flow_ is not None
        now = time.time()
        intake = self.flow_.intake
        found = await intake.store.read(
            lambda tx: store_calls.waiting(tx, overdue_at=now, source=self.name))
        await intake.store.write(lambda tx: intake.services.record_access(
            tx, ACTOR_OPS, AuditAction.CALLS_OVERDUE, f"calls:{self.name}",
            {"count": len(found)}))  # the list holds callers' numbers
        return web.json_response({"overdue": [c.__dict__ for c in found]})

    async def start(self, intake: Intake) -> None:
        await super().start(intake)
        if self.env.background:  # once per machine: one worker logs the overdue calls
            self._monitor = asyncio.create_task(self._watch_overdue(intake))

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor

    async def _watch_overdue(self, intake: Intake) -> None:
        """Log (once per change) how many answered calls are past their notes deadline."""
        last = 0
        while True:
            await asyncio.sleep(self.options.overdue_check_s)
            try:
                found = await intake.store.read(lambda tx: store_calls.waiting(
                    tx, overdue_at=time.time(), source=self.name, limit=20))
                count = await intake.store.read(
                    lambda tx: store_calls.count_overdue(tx, time.time(), self.name))
            except Exception as exc:  # the store is down: /readyz says so; try again later
                log.warning("overdue_check_failed", source=self.name, error=str(exc))
                continue
            if count != last:
                log.warning("calls_notes_overdue", source=self.name, count=count,
                            calls=[c.call_id for c in found])
                last = count

    def openapi(self) -> ApiPart:
        return openapi.part(self)
