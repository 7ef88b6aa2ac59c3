"""The ``citizen_sms`` sink: web and phone cases with a mobile number get one SMS with the
rendered template and its values by name; landlines, anonymous writers and writers who
want no reply get none; a retryable provider failure is retried, a refusal dead-lettered;
one SMS per case whatever the outbox does. On SQLite and PostgreSQL.

``RecordingProvider`` stands in for the real providers (a generic webhook and the two
clouds' APIs, gateway/delivery/citizen/sms/, built by another branch): it implements the
same ``SmsProvider`` protocol and keeps what it was given."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.delivery.citizen.sms import SmsError, SmsMessage
from gateway.delivery.forwarder import Forwarder
from gateway.delivery.sinks.base import SinkEnv
from gateway.store.citizen_notices import CLAIM_S
from gateway.support import registry
from tests.citizen_rig import PUBLIC_URL, CitizenRig
from tests.sms_server import Credentials, SmsServer
from tests.sms_server import block as sms_block


class RecordingProvider:
    """Stands in for a real SMS provider: keeps each message, can fail the next ones."""

    def __init__(self) -> None:
        self.sent: list[SmsMessage] = []
        self.failures: list[SmsError] = []

    async def send(self, message: SmsMessage) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return f"sms-{len(self.sent)}"


class HeldProvider(RecordingProvider):
    """Holds the first message in flight (``entered``) until ``go`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def send(self, message: SmsMessage) -> str:
        if not self.entered.is_set():
            self.entered.set()
            await self.go.wait()
        return await super().send(message)


def web_form(**fields: Any) -> bytes:
    form = {"name": "黄女士", "phone": "13800138000",
            "content": "小区门口共享单车堆放严重，影响通行。", **fields}
    return json.dumps(form, ensure_ascii=False).encode()


def rig(tmp_path: Path, store_url: str, **sink: Any) -> tuple[CitizenRig, RecordingProvider]:
    r = CitizenRig(tmp_path, store_url, {"kind": "citizen_sms", **sink})
    provider = RecordingProvider()
    r.provider = provider
    return r, provider


async def test_web_case_gets_one_sms(tmp_path: Path, store_url: str) -> None:
    r, provider = rig(tmp_path, store_url)
    async with r:
        code = await r.file("web", "web", web_form(), "application/json")
        assert await r.forward() == 1
        assert await r.states() == ["delivered"]
        await r.enqueue_again(code)
        await r.forward()
        assert r.sink.outcomes["already_sent"] == 1
    [message] = provider.sent
    assert message.phone == "+8613800138000"
    assert code in message.text and f"{PUBLIC_URL}/lookup?case_code={code}" in message.text
    assert message.template_params == {
        "case_code": code, "lookup_url": f"{PUBLIC_URL}/lookup?case_code={code}",
        "received_at": "2026-11-26 09:30"}


@pytest.mark.parametrize(("fields", "reason"), [
    ({"reply_wanted": False}, "not_wanted"),
    ({"phone": "0532-88886666"}, "not_mobile"),
    ({"phone": None, "email": "huang@example.cn"}, "no_address"),
])
async def test_no_sms(tmp_path: Path, fields: dict[str, Any], reason: str) -> None:
    r, provider = rig(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}")
    form = {k: v for k, v in {**json.loads(web_form()), **fields}.items() if v is not None}
    async with r:
        await r.file("web", "web", json.dumps(form).encode(), "application/json")
        await r.forward()
        assert await r.states() == ["delivered"]
        assert r.sink.skipped[reason] == 1
    assert provider.sent == []


async def test_anonymous_gets_none(tmp_path: Path) -> None:
    r, provider = rig(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}")
    async with r:
        await r.file("web", "web", json.dumps(
            {"anonymous": True, "content": "路灯不亮已经一周了"}).encode(), "application/json")
        await r.forward()
        assert r.sink.skipped["anonymous"] == 1
    assert provider.sent == []


async def test_retryable_then_refused(tmp_path: Path, store_url: str) -> None:
    r, provider = rig(tmp_path, store_url)
    provider.failures = [SmsError("rate limited", retryable=True),
                         SmsError("template refused", retryable=False)]
    async with r:
        await r.file("web", "web", web_form(), "application/json")
        await r.forward()
        assert await r.states() == ["pending"]
        await r.make_due()
        await r.forward()
        assert await r.states() == ["dead"]
        assert await r.notices() == []
    assert provider.sent == []


async def test_english_is_optional_and_the_link_line_goes_without_public_url(
        tmp_path: Path) -> None:
    r = CitizenRig(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}", {
        "kind": "citizen_sms", "template": {"zh": "编号{case_code}\n查询：{lookup_url}"}},
        api={"token": "test-api-token"})
    provider = RecordingProvider()
    r.provider = provider
    async with r:
        code = await r.file("web", "web", web_form(), "application/json")
        await r.forward()
    assert [m.text for m in provider.sent] == [f"编号{code}"]


async def test_channels_option_limits_who_gets_one(tmp_path: Path) -> None:
    r, provider = rig(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}", channels=["phone"])
    async with r:
        await r.file("web", "web", web_form(), "application/json")
        await r.forward()
        assert r.sink.skipped["channel"] == 1
    assert provider.sent == []


# ---- end to end through the real providers ------------------------------------------

@pytest.mark.parametrize("kind", ["generic", "aliyun", "tencent"])
async def test_a_web_case_reaches_a_real_provider_signed(tmp_path: Path, kind: str) -> None:
    """No stand-in: the sink builds the provider the ``sms:`` block names, and the
    loopback server (tests/sms_server.py) checks its signature before it takes the text."""
    server = SmsServer()
    await server.start()
    try:
        r = CitizenRig(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}",
                       {"kind": "citizen_sms"},
                       sms=sms_block(kind, server.base, server.credentials))
        async with r:
            code = await r.file("web", "web", web_form(), "application/json")
            assert await r.forward() == 1
            assert await r.states() == ["delivered"]
            assert r.sink.outcomes["sent"] == 1
        assert server.refused_signatures == 0
        [received] = server.received
        assert received.provider == kind
        assert code in json.dumps(received.fields, ensure_ascii=False)
    finally:
        await server.close()


async def test_a_wrong_secret_is_a_dead_letter(tmp_path: Path) -> None:
    server = SmsServer()
    await server.start()
    try:
        wrong = Credentials(secret="not-the-shared-secret")
        r = CitizenRig(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}",
                       {"kind": "citizen_sms"}, sms=sms_block("generic", server.base, wrong))
        async with r:
            await r.file("web", "web", web_form(), "application/json")
            await r.forward()
            assert await r.states() == ["dead"]
        assert server.received == [] and server.refused_signatures == 1
    finally:
        await server.close()


async def test_a_confidential_case_still_gets_its_code(tmp_path: Path) -> None:
    """Masking keeps the reporter from other systems; the citizen sink answers the same
    person, so it gets the number (the forwarder hands it the case unmasked)."""
    r, provider = rig(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}")
    async with r:
        code = await r.file("web", "web", web_form(confidential=True), "application/json")
        await r.forward()
        assert await r.states() == ["delivered"]
    [message] = provider.sent
    assert message.phone == "+8613800138000" and code in message.text


async def test_two_forwarders_at_once_send_one_sms_per_interval(
        tmp_path: Path, store_url: str) -> None:
    """Two replicas' forwarders, each holding a case of the same number: while the first
    is sending, the second finds its claim and skips for the interval (deciding by
    reading alone, both sent)."""
    r = CitizenRig(tmp_path, store_url, {"kind": "citizen_sms", "batch_size": 1,
                                         "min_interval_hours": 12})
    provider = HeldProvider()
    r.provider = provider
    async with r:
        first = await r.file("web", "web", web_form(), "application/json")
        second = await r.file("web", "web", web_form(content="路灯不亮已经一周了，晚上很黑。"),
                              "application/json")
        cls = registry.sink_class(r.sink_config.kind)
        other = cls(r.sink_config, r.sink_config.options)
        other.provider = provider
        other.bind(SinkEnv(r.config, r.store, None))
        other_forwarder = Forwarder(r.store, [(r.sink_config, other)])
        sending = asyncio.create_task(r.forward())
        await provider.entered.wait()  # the first forwarder's message is in flight
        assert await other_forwarder.forward_once(r.sink_config, other) == 1
        provider.go.set()
        assert await sending == 1
        assert await r.states() == ["delivered", "delivered"]
        notices = await r.notices()
    assert len(provider.sent) == 1
    assert sorted(notices) == sorted([(first, "sent", None), (second, "skipped", "interval")])
    assert other.skipped["interval"] == 1


async def test_a_claim_left_by_a_dead_sender_is_taken_over_when_old(
        tmp_path: Path, store_url: str) -> None:
    """A ``sending`` claim is another sink at work (retry later) until it is CLAIM_S old:
    then its sender died before recording, and the message is sent (at least once)."""
    r, provider = rig(tmp_path, store_url)
    async with r:
        code = await r.file("web", "web", web_form(), "application/json")
        await r.store.write(lambda tx: tx.execute(
            "INSERT INTO citizen_notices (case_code, channel, state, recipient_key, at) "
            "VALUES (?, 'sms', 'sending', 'k', ?)", (code, time.time())))
        await r.forward()
        assert await r.states() == ["pending"]  # busy: retried later
        assert provider.sent == []
        await r.store.write(lambda tx: tx.execute(
            "UPDATE citizen_notices SET at = ?", (time.time() - CLAIM_S - 1,)))
        await r.make_due()
        await r.forward()
        assert await r.states() == ["delivered"]
        assert await r.notices() == [(code, "sent", None)]
    assert len(provider.sent) == 1


async def test_a_send_that_breaks_unexpectedly_leaves_no_claim(
        tmp_path: Path, store_url: str) -> None:
    """Not a provider's error but a bug: it propagates, and the claim is released so the
    retry sends at once instead of waiting out CLAIM_S."""
    r, provider = rig(tmp_path, store_url)

    async def broken(message: SmsMessage) -> str:
        raise RuntimeError("a bug")

    provider.send = broken  # type: ignore[method-assign]
    async with r:
        await r.file("web", "web", web_form(), "application/json")
        with pytest.raises(RuntimeError):
            await r.forward()
        assert await r.notices() == []
