"""The SMS providers against providers on loopback that check the signature themselves
(tests/sms_server.py, written from each provider's documentation): what is sent, and
which refusals are retried. The signers also reproduce the worked examples the
providers (and the SDK tests that quote them) publish."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from pydantic import ValidationError

from gateway.delivery.citizen.sms import SmsError, SmsMessage, SmsProvider, sms_provider
from gateway.delivery.citizen.sms.aliyun import signature as aliyun_signature
from gateway.delivery.citizen.sms.phone import aliyun_number
from gateway.delivery.citizen.sms.tencent import tc3_authorization
from gateway.model.errors import ConfigError
from gateway.support.config import parse_config
from gateway.support.config_checks import clear_secret_warnings
from gateway.support.sms_config import SmsConfig, parse_sms_config
from tests.sms_server import Answer, Credentials, SmsServer, block

PHONE = "+8613800138000"
MESSAGE = SmsMessage(
    phone=PHONE, text="【12345】您的诉求已受理，编号 CY20261204000001。",
    template_params={"case_code": "CY20261204000001",
                     "lookup_url": "https://12345.example.cn/lookup",
                     "received_at": "2026-12-04 09:30"},
    reference="CY20261204000001",
)
PROVIDERS = ["generic", "aliyun", "tencent"]


@pytest.fixture
async def server() -> AsyncIterator[SmsServer]:
    running = SmsServer()
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def provider(kind: str, server: SmsServer, session: aiohttp.ClientSession,
             creds: Credentials | None = None, **extra: Any) -> SmsProvider:
    config = parse_sms_config(block(kind, server.base, creds or server.credentials, **extra))
    return sms_provider(config, session)


# ---- the published worked examples ---------------------------------------------------


def test_aliyun_signer_reproduces_the_published_example() -> None:
    """Alibaba Cloud's SMS signature example (testId / testSecret, SendSms of
    2017-07-12T02:42:19Z), quoted by the SDK tests of many languages: the signature is
    ``zJDF+Lrzhj/ThnlvIToysFRq6t4=`` for the GET request."""
    params = {
        "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
        "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用", "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466", "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25",
    }
    assert aliyun_signature("testSecret", "GET", params) == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_tc3_signer_reproduces_the_published_example() -> None:
    """Tencent Cloud's "Signature v3" example (CVM DescribeInstances at 1551113065, the
    documentation's masked key pair taken literally, asterisks included)."""
    body = (b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], '
            b'"Name": "instance-name"}]}')
    authorization = tc3_authorization(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******",
        secret_key="Gu5t9xGARNpq86cd98joQYCN3*******", service="cvm", timestamp=1551113065,
        signed_headers={"Content-Type": "application/json; charset=utf-8",
                        "Host": "cvm.tencentcloudapi.com"}, body=body)
    assert authorization == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c")


# ---- sending -------------------------------------------------------------------------


async def test_generic_webhook_sends_the_json_shape(
        server: SmsServer, session: aiohttp.ClientSession) -> None:
    message_id = await provider("generic", server, session).send(MESSAGE)
    assert message_id == "g-1"
    [received] = server.received
    assert received.fields == {"to": PHONE, "text": MESSAGE.text,
                               "params": MESSAGE.template_params,
                               "reference": "CY20261204000001"}
    assert received.headers["Idempotency-Key"] == "CY20261204000001"


async def test_generic_webhook_extra_headers_and_no_signature_without_secret(
        server: SmsServer, session: aiohttp.ClientSession) -> None:
    """Without a ``secret`` nothing is signed (this receiver insists, so it refuses:
    a 401, not retried); the configured headers go along."""
    sender = provider("generic", server, session, secret=None, headers={"X-Api-Key": "k-1"})
    with pytest.raises(SmsError) as refused:
        await sender.send(MESSAGE)
    assert not refused.value.retryable
    assert server.refused_signatures == 1


async def test_aliyun_sends_the_documented_parameters(
        server: SmsServer, session: aiohttp.ClientSession) -> None:
    assert await provider("aliyun", server, session).send(MESSAGE) == "biz-1"
    [received] = server.received
    assert received.fields["PhoneNumbers"] == "13800138000"  # mainland: bare 11 digits
    assert received.fields["SignName"] == "民声网关"
    assert received.fields["TemplateCode"] == "SMS_123456789"
    assert received.fields["OutId"] == "CY20261204000001"
    assert json.loads(received.fields["TemplateParam"]) == MESSAGE.template_params


async def test_aliyun_template_variables_renamed(
        server: SmsServer, session: aiohttp.ClientSession) -> None:
    """A template registered as ``您的编号 ${code}`` takes the case code as ``code``."""
    sender = provider("aliyun", server, session, template_params={"code": "case_code"})
    await sender.send(MESSAGE)
    assert json.loads(server.received[0].fields["TemplateParam"]) == {
        "code": "CY20261204000001"}


async def test_aliyun_nonce_differs_per_request(
        server: SmsServer, session: aiohttp.ClientSession) -> None:
    """The server refuses a nonce used twice: two sends, two fresh nonces."""
    sender = provider("aliyun", server, session)
    await sender.send(MESSAGE)
    await sender.send(MESSAGE)
    assert len(server.received) == 2


async def test_tencent_sends_the_documented_body(
        server: SmsServer, session: aiohttp.ClientSession) -> None:
    assert await provider("tencent", server, session).send(MESSAGE) == "serial-1"
    [received] = server.received
    assert received.fields == {
        "PhoneNumberSet": [PHONE], "SmsSdkAppId": "1400000001", "SignName": "民声网关",
        "TemplateId": "1234567",
        "TemplateParamSet": ["CY20261204000001", "https://12345.example.cn/lookup"],
        "SessionContext": "CY20261204000001",
    }
    assert received.headers["X-TC-Region"] == "ap-guangzhou"
    assert "SignedHeaders=content-type;host;x-tc-action," in received.headers["Authorization"]


@pytest.mark.parametrize("kind", PROVIDERS)
@pytest.mark.parametrize(("answer", "retryable"), [
    ("refuse", False), ("throttle", True), ("error", True),
])
async def test_refusals_say_whether_to_retry(
        server: SmsServer, session: aiohttp.ClientSession, kind: str, answer: Answer,
        retryable: bool) -> None:
    server.answer = answer
    with pytest.raises(SmsError) as refused:
        await provider(kind, server, session).send(MESSAGE)
    assert refused.value.retryable is retryable
    assert server.received == []
    assert "13800138000" not in str(refused.value)  # the message reaches the logs


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_no_answer_is_a_retryable_timeout(
        server: SmsServer, session: aiohttp.ClientSession, kind: str) -> None:
    server.answer = "hang"
    with pytest.raises(SmsError, match="no answer within") as refused:
        await provider(kind, server, session, timeout_s=0.3).send(MESSAGE)
    assert refused.value.retryable


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_wrong_secret_is_refused_by_the_provider_and_not_retried(
        server: SmsServer, session: aiohttp.ClientSession, kind: str) -> None:
    wrong = Credentials(secret="not-the-secret", access_key_secret="not-the-secret",
                        secret_key="not-the-secret")
    with pytest.raises(SmsError) as refused:
        await provider(kind, server, session, creds=wrong).send(MESSAGE)
    assert not refused.value.retryable
    assert server.refused_signatures == 1  # the server's own check said no


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_unreachable_provider_is_retried(
        session: aiohttp.ClientSession, kind: str) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = parse_sms_config(block(kind, base, Credentials()))
    with pytest.raises(SmsError) as refused:
        await sms_provider(config, session).send(MESSAGE)
    assert refused.value.retryable


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_a_number_not_in_e164_is_refused_before_sending(
        server: SmsServer, session: aiohttp.ClientSession, kind: str) -> None:
    with pytest.raises(SmsError, match=r"E\.164") as refused:
        await provider(kind, server, session).send(
            SmsMessage(phone="13800138000", text="x", template_params={}))
    assert not refused.value.retryable
    assert "13800138000" not in str(refused.value)
    assert server.received == [] and server.refused_signatures == 0


def test_aliyun_number_format() -> None:
    assert aliyun_number("+8613800138000") == "13800138000"
    assert aliyun_number("+85261234567") == "85261234567"  # country code, no + or 00


# ---- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ({"provider": "generic"}, ["sms.generic.url: required"]),
    ({"provider": "aliyun", "access_key_id": "a"},
     ["sms.aliyun.access_key_secret: required", "sms.aliyun.sign_name: required",
      "sms.aliyun.template_code: required"]),
    ({"provider": "tencent", "secret_id": "i", "secret_key": "k", "sign_name": "s",
      "sms_sdk_app_id": "1400", "template_id": "12", "template_params": ["case_no"]},
     ["sms.tencent.template_params.0:"]),
    ({"provider": "tencent"}, ["sms.tencent.secret_key: required",
                               "sms.tencent.sms_sdk_app_id: required",
                               "sms.tencent.template_id: required"]),
    ({"provider": "carrier-pigeon"}, ["sms:"]),
    ({"provider": "generic", "url": "ftp://x"}, ["sms.generic.url:"]),
    ({"provider": "generic", "url": "https://x", "headers": {"Bad Name": "v"}},
     ["sms.generic.headers.Bad Name.[key]:"]),
])
def test_config_errors_name_the_field(raw: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"sms": raw})
    text = str(error.value)
    for line in expected:
        assert line in text


def test_secrets_come_from_the_environment_and_stay_hidden(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TENCENT_SMS_KEY", "tencent-key-from-env")
    config = parse_config({"sms": {
        "provider": "tencent", "secret_id": "AKIDx", "secret_key": "${TEST_TENCENT_SMS_KEY}",
        "sms_sdk_app_id": "1400000001", "sign_name": "民声网关", "template_id": "1234567"}})
    sms: SmsConfig | None = config.sms
    assert sms is not None and sms.provider == "tencent"
    assert sms.secret_key.get_secret_value() == "tencent-key-from-env"
    assert "tencent-key-from-env" not in repr(config)
    with pytest.raises(ConfigError, match="TEST_UNSET_SMS_SECRET is not set"):
        parse_config({"sms": {"provider": "aliyun", "access_key_id": "a",
                              "access_key_secret": "${TEST_UNSET_SMS_SECRET}",
                              "sign_name": "s", "template_code": "SMS_1"}})


def test_no_sms_block_means_no_sms() -> None:
    assert parse_config({}).sms is None
    with pytest.raises(ValidationError):
        parse_sms_config({"provider": "generic", "url": "https://x", "header": {}})


def _yaml_blocks(doc: str, heading: str) -> list[str]:
    """The ```yaml blocks under ``heading`` (up to the next heading of its level or up)."""
    text = (Path(__file__).parent.parent / "docs" / doc).read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    level = len(heading.split(" ", 1)[0])
    section = re.split(rf"\n#{{1,{level}}} ", section, maxsplit=1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)


def test_documented_examples_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``sms:`` example in docs/citizen.md#sms and docs/configuration.md#sms loads."""
    for var in ("SMS_TOKEN", "SMS_SIGNING_SECRET", "SMS_API_KEY",
                "ALIYUN_SMS_ACCESS_KEY_SECRET", "TENCENT_SMS_SECRET_ID",
                "TENCENT_SMS_SECRET_KEY"):
        monkeypatch.setenv(var, f"value-of-{var.lower()}")
    blocks = _yaml_blocks("citizen.md", "## SMS") + _yaml_blocks("configuration.md", "### SMS")
    providers = [parse_config(yaml.safe_load(block)).sms for block in blocks]
    assert sorted(p.provider for p in providers if p is not None) == [
        "aliyun", "generic", "tencent", "tencent"]


def test_secrets_written_in_clear_are_warned_about() -> None:
    """``check-config`` warns about every secret key of the block written in clear."""
    warnings = clear_secret_warnings({"sms": {
        "provider": "aliyun", "access_key_id": "LTAI5tExampleKeyId",
        "access_key_secret": "in-clear", "sign_name": "s", "template_code": "SMS_1"}})
    assert [w.split(":")[0] for w in warnings] == ["sms.access_key_secret"]
    warnings = clear_secret_warnings({"sms": {
        "provider": "generic", "url": "https://x", "token": "t-in-clear",
        "secret": "s-in-clear"}})
    assert sorted(w.split(":")[0] for w in warnings) == ["sms.secret", "sms.token"]
