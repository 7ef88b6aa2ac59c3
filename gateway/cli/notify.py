"""``minsheng notify test``: send one rendered notice with a sample case code, to try the
template and the way out (the ``smtp`` block, the SMS provider) before citizens rely on
them. Nothing is recorded in the store; the interval rule does not apply. Exit 0 sent,
1 not sent (saying why in Chinese and English), 2 a bad config or option."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Literal

import aiohttp
import click

from gateway.cli.common import config_option, load_or_exit
from gateway.delivery.citizen.email_sink import CitizenEmailOptions
from gateway.delivery.citizen.sms import SmsError, SmsMessage
from gateway.delivery.citizen.sms_sink import CitizenSmsOptions, provider_for
from gateway.delivery.citizen.templates import SAMPLE_CODE_SEQUENCE, MessageTemplate, NoticeValues
from gateway.model.casecode import format_code
from gateway.support.config import GatewayConfig
from gateway.support.mail import Mailer, MailError, OutgoingMail
from gateway.support.mail_config import check_address

NotifyChannel = Literal["sms", "email"]
SINK_KINDS: dict[NotifyChannel, str] = {"email": "citizen_email", "sms": "citizen_sms"}
TEST_SUBJECT = "民声网关测试消息 / Minsheng Gateway test message"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@click.group("notify")
def notify() -> None:
    """Messages to citizens (docs/citizen.md): try a template and the way out."""


def _template(config: GatewayConfig, channel: NotifyChannel, sink_name: str | None,
              ) -> MessageTemplate:
    """The template of the named sink, else of the first sink of the channel's kind, else
    the built-in one."""
    kind = SINK_KINDS[channel]
    found = [s for s in config.sinks if s.kind == kind
             and (sink_name is None or s.name == sink_name)]
    if sink_name is not None and not found:
        raise click.BadParameter(f"no {kind} sink named {sink_name!r}", param_hint="--sink")
    options = found[0].options if found else {}
    model = CitizenEmailOptions if channel == "email" else CitizenSmsOptions
    return model.model_validate(options).template


def _recipient(channel: NotifyChannel, to: str) -> str:
    if channel == "email":
        try:
            return check_address(to)
        except ValueError:
            raise click.BadParameter("不是电子邮件地址 / not an e-mail address",
                                     param_hint="--to") from None
    number = re.sub(r"[\s-]", "", to)
    if re.fullmatch(r"1[3-9]\d{9}", number):
        number = "+86" + number
    if not _E164.match(number):
        raise click.BadParameter("不是手机号码（E.164，如 +8613800138000）/ not a phone number "
                                 "(E.164, e.g. +8613800138000)", param_hint="--to")
    return number


async def _send_email(config: GatewayConfig, to: str, text: str) -> str:
    if config.smtp is None:
        raise MailError("未配置 smtp 块 / no smtp block in the config", retriable=False)
    sent = await Mailer(config.smtp).send(
        OutgoingMail(to=(to,), subject=TEST_SUBJECT, text=text), "notify_test")
    return f"Message-ID {sent.message_id}"


async def _send_sms(config: GatewayConfig, to: str, text: str, values: NoticeValues) -> str:
    async with aiohttp.ClientSession() as session:
        provider = provider_for(config, session)
        if provider is None:
            raise SmsError("未配置短信服务商（sms 块）/ no SMS provider configured (sms block)",
                           retryable=False)
        ref = await provider.send(SmsMessage(phone=to, text=text,
                                             template_params=values.as_dict()))
    return f"id {ref}"


@notify.command("test")
@config_option
@click.option("--channel", type=click.Choice(["sms", "email"]), required=True)
@click.option("--to", "to", required=True, help="an e-mail address or a phone number (E.164)")
@click.option("--sink", "sink_name", default=None,
              help="the citizen sink whose template to use (default: the first of its kind)")
def test(config_path: Path, channel: NotifyChannel, to: str, sink_name: str | None) -> None:
    """Send one notice with a sample case code."""
    config = load_or_exit(config_path)
    template = _template(config, channel, sink_name)
    recipient = _recipient(channel, to)
    now = datetime.now(config.tz)
    code = format_code(config.region_code, now.date(), "web", SAMPLE_CODE_SEQUENCE)
    values = NoticeValues.for_case(code, now, config.api.public_url, config.tz)
    text = template.render(values)
    try:
        if channel == "email":
            ref = asyncio.run(_send_email(config, recipient, text))
        else:
            ref = asyncio.run(_send_sms(config, recipient, text, values))
    except (MailError, SmsError) as exc:
        click.echo(f"未发送 / not sent: {exc}", err=True)
        sys.exit(1)
    click.echo(f"已发送（样例编号 {code}）/ sent (sample code {code}): {ref}")
    click.echo(text)
