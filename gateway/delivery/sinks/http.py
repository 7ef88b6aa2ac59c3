"""The ``http`` sink: POST each complaint's JSON to the case platform.

``Idempotency-Key: <case_code>`` lets the receiver drop repeats of at-least-once
delivery; an update of a case has a key of its own and ``X-Minsheng-Kind`` says which.
With a secret, ``X-Minsheng-Signature: t=<unix>,v1=<hex>`` is the HMAC-SHA256 of
``"<unix>.<body>"``, so the receiver can check origin and freshness. Requests in flight
are bounded per sink: httpx throughput collapses with many in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from gateway.delivery.sinks.base import Outcome, Sink
from gateway.model.errors import PermanentSinkError, RetriableSinkError, SinkError
from gateway.store.outbox import Delivery
from gateway.support.config import SinkConfig
from gateway.support.connection_check import ConnectionCheck
from gateway.support.http_client import make_client

SIGNATURE_HEADER = "X-Minsheng-Signature"


class HttpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://")
    secret: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    max_in_flight: int = Field(default=8, ge=1, le=64)
    headers: dict[str, str] = Field(default_factory=dict)
    health_url: str | None = Field(default=None, pattern=r"^https?://",
                                   description="GET by check-config --connect; 2xx is healthy")


def classify_status(status: int, body: str = "") -> Outcome:
    """Map the receiver's answer to an outcome: delivered, retry later, or dead-letter."""
    if 200 <= status < 300:
        return None
    detail = f"HTTP {status}: {body[:200]}"
    if status in (408, 425, 429) or status >= 500:
        return RetriableSinkError(detail)
    if status == 409:  # the receiver already has this idempotency key
        return None
    return PermanentSinkError(detail)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def idempotency_key(delivery: Delivery) -> str:
    """The case code for a new case; updates of a case (and events) get keys of their own,
    or a receiver that de-duplicates on the key would drop them."""
    if delivery.kind == "case" and delivery.case_code:
        return delivery.case_code
    return f"{delivery.case_code or 'event'}.{delivery.kind}.{delivery.outbox_id}"


class HttpSink(Sink[HttpOptions]):
    def __init__(self, config: SinkConfig, options: Any) -> None:
        super().__init__(config, options)
        self.immediate_attempts = config.retry.immediate_attempts
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

    async def check_connection(self) -> ConnectionCheck:
        """``GET health_url`` must answer 2xx; without one, ``OPTIONS url`` must answer at
        all below 500 (a receiver that allows only POST still says 405: it is there)."""
        health = self.options.health_url
        async with make_client(timeout_s=self.options.timeout_s) as client:
            if health is not None:
                response = await client.get(health, headers=self.options.headers)
            else:
                response = await client.options(self.options.url, headers=self.options.headers)
        status = response.status_code
        if health is not None and not 200 <= status < 300:
            return ConnectionCheck.failed(f"健康检查返回 HTTP {status}",
                                          f"health_url answered HTTP {status}")
        if status >= 500:
            return ConnectionCheck.failed(f"接收方返回 HTTP {status}",
                                          f"the receiver answered HTTP {status}")
        what = "health_url" if health is not None else "OPTIONS"
        return ConnectionCheck.ok(f"可达，HTTP {status}", f"reachable, {what} HTTP {status}")

    async def _deliver_one(self, delivery: Delivery) -> Outcome:
        async with self._slots:
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self.immediate_attempts),
                    wait=wait_exponential(multiplier=0.2, max=2),
                    retry=retry_if_exception_type(RetriableSinkError),
                    reraise=True,
                ):
                    with attempt:
                        await self._post(delivery)
            except SinkError as exc:
                return exc
        return None

    async def _post(self, delivery: Delivery) -> None:
        assert self._client is not None, "sink not started"
        body = delivery.body.encode("utf-8")
        headers = {"content-type": "application/json", **self.options.headers}
        headers["X-Minsheng-Kind"] = delivery.kind
        if delivery.case_code:
            headers["Idempotency-Key"] = idempotency_key(delivery)
        if self.options.secret is not None:
            headers[SIGNATURE_HEADER] = sign(
                self.options.secret.get_secret_value(), int(time.time()), body
            )
        try:
            response = await self._client.post(self.options.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise RetriableSinkError(f"timeout after {self.options.timeout_s}s") from exc
        except httpx.HTTPError as exc:
            raise RetriableSinkError(f"{type(exc).__name__}: {exc}") from exc
        outcome = classify_status(response.status_code, response.text)
        if outcome is not None:
            raise outcome
