"""The ``open311`` sink: file each new case as a GeoReport v2 service request.

A city whose case system speaks Open311 GeoReport v2 takes cases without glue: each
new case is ``POST <url>/requests.json``, form-encoded as the spec says, with
``api_key``, ``jurisdiction_id``, ``service_code`` (the case's category through
``service_code_map``, else ``default_service_code``), ``description``, the location
(``address_string``, ``lat``/``long``) and ``media_url`` (the first photo's link:
the sink's ``attachments: link`` mode and ``api.public_url`` make it absolute).

Contact fields (``first_name``/``last_name``, ``email``, ``phone``) go along only when
the citizen gave them for an answer: not anonymous and ``reply_wanted``. Otherwise the
endpoint learns what happened and where, never who said so.

The endpoint answers ``[{"service_request_id": …}]`` or, when it files later,
``[{"token": …}]``; both count as delivered. Errors come as
``[{"code": 400, "description": "…"}]`` with a 4xx/5xx status, mapped like the ``http``
sink maps statuses (``classify_status``). GeoReport v2 has no way to amend a request,
so updates of a case (and hot-topic events) are not posted: they count as delivered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway.delivery.sinks.base import Outcome, Sink
from gateway.delivery.sinks.http import classify_status
from gateway.model.errors import PermanentSinkError, RetriableSinkError, SinkError
from gateway.store.outbox import Delivery
from gateway.support.config import SinkConfig
from gateway.support.connection_check import ConnectionCheck
from gateway.support.http_client import make_client
from gateway.support.logging import get_logger

log = get_logger("gateway.sinks.open311")


class Open311Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://.+/v2/?$",
                     description="the endpoint base, ending in /v2")
    api_key: SecretStr | None = None
    jurisdiction_id: str | None = Field(default=None, min_length=1)
    service_code_map: dict[str, str] = Field(default_factory=dict)
    default_service_code: str | None = Field(default=None, min_length=1)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_in_flight: int = Field(default=4, ge=1, le=32)

    @field_validator("api_key")
    @classmethod
    def _api_key_set(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty ``${VAR}`` would post every case without a key, each refused."""
        if value is not None and not value.get_secret_value():
            raise ValueError("empty (is its environment variable set?)")
        return value

    def endpoint(self, document: str) -> str:
        return f"{self.url.rstrip('/')}/{document}"

    def service_code(self, category: str | None) -> str | None:
        mapped = self.service_code_map.get(category) if category else None
        return mapped or self.default_service_code


def _category(case: dict[str, Any]) -> str | None:
    """The classifier's code when there is one, else the channel's own hint."""
    classification = case.get("classification")
    if isinstance(classification, dict) and classification.get("code"):
        return str(classification["code"])
    hint = case.get("category_hint")
    return str(hint) if hint else None


def _location_fields(case: dict[str, Any]) -> dict[str, str]:
    location = case.get("location")
    if not isinstance(location, dict):
        return {}
    fields: dict[str, str] = {}
    if location.get("address"):
        fields["address_string"] = str(location["address"])
    if location.get("latitude") is not None and location.get("longitude") is not None:
        fields["lat"] = str(location["latitude"])
        fields["long"] = str(location["longitude"])
    return fields


def _contact_fields(case: dict[str, Any]) -> dict[str, str]:
    """Only for a citizen who asked for an answer and did not stay anonymous. A name
    with a space is "first last"; one without (a Chinese name) goes whole to last_name."""
    reporter = case.get("reporter")
    if not isinstance(reporter, dict):
        return {}
    if reporter.get("anonymous") or not reporter.get("reply_wanted", True):
        return {}
    fields = {k: str(reporter[k]) for k in ("email", "phone") if reporter.get(k)}
    name = str(reporter.get("name") or "").strip()
    if " " in name:
        fields["first_name"], fields["last_name"] = name.rsplit(" ", 1)
    elif name:
        fields["last_name"] = name
    return fields


def _media_url(case: dict[str, Any]) -> dict[str, str]:
    """The first image whose link is absolute (``sha256:…`` means no public_url)."""
    for item in case.get("attachments") or []:
        if not isinstance(item, dict):
            continue
        link = str(item.get("storage_ref") or "")
        if str(item.get("media_type", "")).startswith("image/") and link.startswith("http"):
            return {"media_url": link}
    return {}


def request_form(options: Open311Options, case: dict[str, Any]) -> dict[str, str]:
    """The form fields of ``POST requests.json`` for one case (a complaint's JSON)."""
    service_code = options.service_code(_category(case))
    if service_code is None:
        raise PermanentSinkError(
            f"no service_code for category {_category(case)!r} and no default_service_code")
    text = "\n\n".join(p for p in (case.get("subject"), case.get("body")) if p)
    form = {"service_code": service_code, "description": text}
    if options.api_key is not None:
        form["api_key"] = options.api_key.get_secret_value()
    if options.jurisdiction_id:
        form["jurisdiction_id"] = options.jurisdiction_id
    return {**form, **_location_fields(case), **_contact_fields(case), **_media_url(case)}


def read_answer(status: int, text: str) -> str:
    """The request id (or token) of a 2xx answer; raises the ``SinkError`` of any other."""
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    first = answer[0] if isinstance(answer, list) and answer else None
    if not 200 <= status < 300:
        detail = text
        if isinstance(first, dict) and "description" in first:
            detail = f"{first.get('code', status)}: {first['description']}"
        outcome = classify_status(status, detail)
        if outcome is None:  # a 409: the endpoint has it already
            return "already filed"
        raise outcome
    for key in ("service_request_id", "token"):
        if isinstance(first, dict) and first.get(key) not in (None, ""):
            return f"{key}={first[key]}"
    # Accepted but unreadable: posting again could file it twice, so an operator looks.
    raise PermanentSinkError(f"HTTP {status} without service_request_id or token: {text[:200]}")


class Open311Sink(Sink[Open311Options]):
    def __init__(self, config: SinkConfig, options: Any) -> None:
        super().__init__(config, options)
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(self.options.max_in_flight)

    async def start(self) -> None:
        self._client = make_client(timeout_s=self.options.timeout_s)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._deliver_one(d) for d in batch)))

    async def _deliver_one(self, delivery: Delivery) -> Outcome:
        if delivery.kind != "case":
            return None  # GeoReport v2 cannot amend a request; see the module docstring
        async with self._slots:
            try:
                await self._post(delivery)
            except SinkError as exc:
                return exc
        return None

    async def _post(self, delivery: Delivery) -> None:
        assert self._client is not None, "sink not started"
        try:
            case = json.loads(delivery.body)
        except ValueError as exc:
            raise PermanentSinkError(f"not a complaint document: {exc}") from exc
        form = request_form(self.options, case)
        try:
            response = await self._client.post(self.options.endpoint("requests.json"),
                                               data=form)
        except httpx.TimeoutException as exc:
            raise RetriableSinkError(f"timeout after {self.options.timeout_s}s") from exc
        except httpx.HTTPError as exc:
            raise RetriableSinkError(f"{type(exc).__name__}: {exc}") from exc
        filed = read_answer(response.status_code, response.text)
        log.info("open311_filed", sink=self.name, case=delivery.case_code, answer=filed)

    async def check_connection(self) -> ConnectionCheck:
        """``GET services.json`` (with the jurisdiction) must answer 2xx with a list."""
        params = {"jurisdiction_id": self.options.jurisdiction_id} \
            if self.options.jurisdiction_id else {}
        async with make_client(timeout_s=self.options.timeout_s) as client:
            response = await client.get(self.options.endpoint("services.json"), params=params)
        status = response.status_code
        if not 200 <= status < 300:
            return ConnectionCheck.failed(f"services.json 返回 HTTP {status}",
                                          f"services.json answered HTTP {status}")
        try:
            services = response.json()
        except ValueError:
            services = None
        if not isinstance(services, list):
            return ConnectionCheck.failed("services.json 不是服务列表",
                                          "services.json is not a list of services")
        return ConnectionCheck.ok(f"可达，{len(services)} 项服务",
                                  f"reachable, {len(services)} services")
