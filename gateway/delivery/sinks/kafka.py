"""The ``kafka`` sink: produce each delivery as one record to a Kafka topic.

A case platform that already reads Kafka takes cases without glue. Each record:

- **key** = the case code, so a case and its updates land in one partition and keep
  their order; a hot-topic event is keyed by its cluster id (``cluster.<id>``);
- **value** = the JSON the other sinks send (the canonical complaint, or the event);
- **headers** ``minsheng-kind`` (case / update / event), ``minsheng-schema-version``,
  and with a secret ``minsheng-signature`` (``t=<unix>,v1=<hex>``, the HMAC-SHA256 of
  ``"<unix>.<value>"``, computed by the ``http`` sink's ``sign``);
- **topic** = ``topics.<kind>`` when set, else ``topic``.

Delivery counts only on the broker's acknowledgement (``acks=all``: every in-sync
replica has the record), so the outbox stays at-least-once; a consumer drops repeats by
key. The idempotent producer (on by default) keeps the broker from writing a record
twice when the producer retries on its own; it is a switch because brokers without
producer-id support (the in-memory test broker) refuse it.

The library is aiokafka (asyncio-native, pure Python with optional C speed-ups, the
Kafka client the asyncio world uses), so no librdkafka build is needed.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)
from aiokafka.helpers import create_ssl_context
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway.delivery.sinks.base import Outcome, Sink
from gateway.delivery.sinks.http import sign
from gateway.model.errors import PermanentSinkError, RetriableSinkError, SinkError
from gateway.model.schema import SCHEMA_VERSION
from gateway.store.outbox import Delivery, DeliveryKind
from gateway.support.config import SinkConfig
from gateway.support.connection_check import ConnectionCheck
from gateway.support.logging import get_logger

log = get_logger("gateway.sinks.kafka")

KIND_HEADER = "minsheng-kind"
SCHEMA_HEADER = "minsheng-schema-version"
SIGNATURE_HEADER = "minsheng-signature"
_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"  # what Kafka accepts as a topic name

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# Errors that concern the record itself or the producer's rights: sending it again
# changes nothing, so the entry is dead-lettered (as a 4xx is by the http sink).
_REFUSALS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError,
    CorruptRecordException, InvalidTopicError, TopicAuthorizationFailedError,
)


class KafkaTopics(BaseModel):
    """A topic per kind of delivery; a kind left out goes to ``topic``."""

    model_config = ConfigDict(extra="forbid")

    case: str | None = Field(default=None, pattern=_TOPIC)
    update: str | None = Field(default=None, pattern=_TOPIC)
    event: str | None = Field(default=None, pattern=_TOPIC)
    erasure: str | None = Field(default=None, pattern=_TOPIC)


class KafkaSasl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mechanism: SaslMechanism = "PLAIN"
    username: str = Field(min_length=1)
    password: SecretStr

    @field_validator("password")
    @classmethod
    def _password_set(cls, value: SecretStr) -> SecretStr:
        return _not_empty(value)


class KafkaTls(BaseModel):
    """Passed to ``aiokafka.helpers.create_ssl_context``; no CA file: the system's CAs."""

    model_config = ConfigDict(extra="forbid")

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    check_hostname: bool = True


class KafkaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: list[str] = Field(min_length=1)
    topic: str = Field(pattern=_TOPIC)
    topics: KafkaTopics = Field(default_factory=KafkaTopics)
    client_id: str = Field(default="minsheng-gateway", min_length=1)
    idempotent: bool = True
    secret: SecretStr | None = None
    send_timeout_s: float = Field(default=10.0, gt=0, le=300)
    linger_ms: int = Field(default=5, ge=0, le=1000)
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl: KafkaSasl | None = None
    tls: KafkaTls | None = None

    @field_validator("secret")
    @classmethod
    def _secret_set(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _not_empty(value)

    @model_validator(mode="before")
    @classmethod
    def _one_server_as_list(cls, data: Any) -> Any:
        """``bootstrap_servers: host:9092`` is as good as a list of one."""
        if isinstance(data, dict) and isinstance(data.get("bootstrap_servers"), str):
            data = {**data, "bootstrap_servers": data["bootstrap_servers"].split(",")}
        return data

    @model_validator(mode="after")
    def _coherent(self) -> KafkaOptions:
        problems = [
            f"bootstrap_servers: {s!r} is not host:port"
            for s in self.bootstrap_servers if not _is_server(s)
        ]
        uses_sasl = self.security_protocol.startswith("SASL_")
        if uses_sasl and self.sasl is None:
            problems.append(f"sasl: required with security_protocol {self.security_protocol}")
        if self.sasl is not None and not uses_sasl:
            problems.append("sasl: needs security_protocol SASL_PLAINTEXT or SASL_SSL")
        if self.tls is not None and not self.security_protocol.endswith("SSL"):
            problems.append("tls: needs security_protocol SSL or SASL_SSL")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def topic_for(self, kind: DeliveryKind) -> str:
        return getattr(self.topics, kind) or self.topic

    def all_topics(self) -> set[str]:
        return {self.topic_for(kind) for kind in ("case", "update", "event", "erasure")}


def _not_empty(value: SecretStr) -> SecretStr:
    """An empty ``${VAR}`` would sign with an empty key or log in without a password."""
    if not value.get_secret_value():
        raise ValueError("empty (is its environment variable set?)")
    return value


def _is_server(server: str) -> bool:
    host, _, port = server.strip().rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def record_key(delivery: Delivery) -> bytes:
    """The case code; an event (no case) by its hot-topic cluster, so one cluster's events
    keep their order too."""
    if delivery.case_code:
        return delivery.case_code.encode()
    cluster = _cluster_id(delivery.body)
    return f"cluster.{cluster}".encode() if cluster else f"event.{delivery.outbox_id}".encode()


def _cluster_id(body: str) -> str | None:
    try:
        found = json.loads(body).get("cluster_id")
    except (ValueError, AttributeError):
        return None
    return str(found) if found else None


def classify(exc: BaseException) -> SinkError:
    """Map what the producer raised to retry later or dead-letter."""
    if isinstance(exc, _REFUSALS):
        return PermanentSinkError(f"kafka refused the record: {type(exc).__name__}: {exc}")
    if isinstance(exc, TimeoutError | KafkaTimeoutError):
        return RetriableSinkError("kafka: no acknowledgement in time")
    if isinstance(exc, KafkaConnectionError | OSError):
        return RetriableSinkError(f"kafka unreachable: {exc}")
    return RetriableSinkError(f"kafka: {type(exc).__name__}: {exc}")


class KafkaSink(Sink[KafkaOptions]):
    """One producer per sink, started on first use: a broker that is down when the gateway
    starts delays deliveries, never the intake."""

    def __init__(self, config: SinkConfig, options: Any) -> None:
        super().__init__(config, options)
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def close(self) -> None:
        await self._drop_producer()

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        try:
            producer = await self._started_producer()
        except (KafkaError, OSError, TimeoutError) as exc:
            error = self._start_error(exc)
            return [error for _ in batch]
        outcomes: list[Outcome] = list(
            await asyncio.gather(*(self._produce(producer, d) for d in batch))
        )
        failed = sum(isinstance(o, RetriableSinkError) for o in outcomes)
        if failed:
            # The producer may hold a dead connection or stale metadata (a broker that came
            # back empty): the next batch starts from a fresh one.
            log.warning("kafka_producer_reset", sink=self.name, failed=failed)
            await self._drop_producer()
        return outcomes

    def _start_error(self, exc: BaseException) -> SinkError:
        """Why the producer did not start. The idempotent producer asks the broker for a
        producer id at start; a broker without them answers an error (aiokafka says only
        "UnknownError"), so a broker's refusal at start carries the hint."""
        error = classify(exc)
        refused = isinstance(exc, KafkaError) and not isinstance(
            exc, KafkaConnectionError | KafkaTimeoutError)
        if self.options.idempotent and refused:
            error = RetriableSinkError(
                f"{error} (at producer start; a broker without producer ids refuses the "
                "idempotent producer: set idempotent: false for it)")
        return error

    async def _produce(self, producer: AIOKafkaProducer, delivery: Delivery) -> Outcome:
        value = delivery.body.encode("utf-8")
        try:
            async with asyncio.timeout(self.options.send_timeout_s):
                acked = await producer.send(
                    self.options.topic_for(delivery.kind), value=value,
                    key=record_key(delivery), headers=self._headers(delivery.kind, value),
                )
                await acked  # the broker's acknowledgement (acks=all)
        except (KafkaError, OSError, TimeoutError) as exc:
            return classify(exc)
        return None

    async def check_connection(self) -> ConnectionCheck:
        """Fetch the cluster's metadata with a client of its own (no producer: a broker
        that refuses the idempotent producer is still reachable). A configured topic the
        broker does not list yet is named, not failed: brokers may create it on first write."""
        client = AIOKafkaClient(**connection_settings(self.options))
        try:
            async with asyncio.timeout(self.options.send_timeout_s):
                await client.bootstrap()
                cluster = await client.fetch_all_metadata()
        except (KafkaError, OSError) as exc:
            return ConnectionCheck.failed("无法连接 Kafka", f"kafka unreachable: {exc}")
        finally:
            await client.close()
        brokers = len(cluster.brokers())
        missing = sorted(self.options.all_topics() - cluster.topics())
        if missing:
            names = ", ".join(missing)
            return ConnectionCheck.ok(f"可达，{brokers} 个 broker；主题尚不存在：{names}",
                                      f"reachable, {brokers} brokers; topics not there yet: "
                                      f"{names} (created on first write if the broker allows)")
        return ConnectionCheck.ok(f"可达，{brokers} 个 broker", f"reachable, {brokers} brokers")

    def _headers(self, kind: DeliveryKind, value: bytes) -> list[tuple[str, bytes]]:
        headers = [(KIND_HEADER, kind.encode()), (SCHEMA_HEADER, str(SCHEMA_VERSION).encode())]
        if self.options.secret is not None:
            signature = sign(self.options.secret.get_secret_value(), int(time.time()), value)
            headers.append((SIGNATURE_HEADER, signature.encode()))
        return headers

    async def _started_producer(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(**producer_settings(self.options))
                try:
                    async with asyncio.timeout(self.options.send_timeout_s):
                        await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
                log.info("kafka_producer_started", sink=self.name,
                         idempotent=self.options.idempotent)
            return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


def producer_settings(options: KafkaOptions) -> dict[str, Any]:
    """The keyword arguments of ``AIOKafkaProducer`` for these options."""
    return {
        **connection_settings(options),
        "acks": "all",
        "enable_idempotence": options.idempotent,
        "linger_ms": options.linger_ms,
        "max_request_size": options.max_request_bytes,
    }


def connection_settings(options: KafkaOptions) -> dict[str, Any]:
    """What any aiokafka client needs to reach and log in to the cluster (the producer,
    and the bare client of the connection check)."""
    settings: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in options.bootstrap_servers],
        "client_id": options.client_id,
        "request_timeout_ms": int(options.send_timeout_s * 1000),
        "security_protocol": options.security_protocol,
    }
    if options.sasl is not None:
        settings.update(
            sasl_mechanism=options.sasl.mechanism,
            sasl_plain_username=options.sasl.username,
            sasl_plain_password=options.sasl.password.get_secret_value(),
        )
    if options.security_protocol.endswith("SSL"):
        settings["ssl_context"] = ssl_context(options.tls or KafkaTls())
    return settings


def ssl_context(tls: KafkaTls) -> ssl.SSLContext:
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(tls.ca_file) if tls.ca_file else None,
        certfile=str(tls.cert_file) if tls.cert_file else None,
        keyfile=str(tls.key_file) if tls.key_file else None,
        password=tls.key_password.get_secret_value() if tls.key_password else None,
    )
    context.check_hostname = tls.check_hostname
    return context
