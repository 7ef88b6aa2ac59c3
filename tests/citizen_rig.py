"""A store, the intake and one citizen sink with its forwarder, driven one batch at a time
(``forward``): what the citizen-notice tests share. Cases are filed through the real
pipeline (normalizer, dedup, outbox) from raw records, as an adapter would hand them over."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.delivery.citizen.notice_sink import CitizenSink
from gateway.delivery.forwarder import Forwarder
from gateway.delivery.sinks.base import SinkEnv
from gateway.model.schema import RawRecord
from gateway.server.app import build_intake, open_store
from gateway.store import outbox
from gateway.support import registry
from gateway.support.config import GatewayConfig
from gateway.support.mail import Mailer
from tests.conftest import gateway_config

OWN_ADDRESS = "hotline@12345.example.cn"
PUBLIC_URL = "https://12345.example.cn"
_refs = itertools.count(1)


def mail_source(**overrides: Any) -> dict[str, Any]:
    """An ``imap_email`` source (never started here: cases are filed from raw mail)."""
    return {"name": "mail", "adapter": "imap_email", "host": "127.0.0.1",
            "username": "hotline", "password": "imap-pw-not-used",
            "own_addresses": [OWN_ADDRESS], **overrides}


def citizen_mail(n: int, *, sender: str = "citizen@example.cn", headers: str = "",
                 subject: str = "下水道堵塞") -> bytes:
    body = f"第{n}号反映：幸福路{n}号门前的下水道堵塞{n}天了，污水漫到路面，请尽快处理。"
    return (f"From: {sender}\r\nTo: {OWN_ADDRESS}\r\nSubject: {subject} {n}\r\n"
            f"Date: Mon, 02 Dec 2019 09:{n % 60:02d}:00 +0800\r\n"
            f"Message-ID: <citizen-{n}@example.cn>\r\n{headers}MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
            f"\r\n{body}\r\n").encode()


class CitizenRig:
    def __init__(self, tmp_path: Path, store_url: str, sink: dict[str, Any],
                 **overrides: Any) -> None:
        overrides.setdefault("api", {"token": "test-api-token", "public_url": PUBLIC_URL})
        overrides.setdefault("sources", [{"name": "web", "adapter": "web_mailbox"},
                                         mail_source()])
        self.config: GatewayConfig = gateway_config(
            tmp_path, store_url, sinks=[{"name": "notify", "poll_interval_s": 0.2, **sink}],
            **overrides)
        self.sink_config = self.config.sinks[0]
        self.provider: Any = None

    async def __aenter__(self) -> CitizenRig:
        config = self.config
        self.store = open_store(config)
        await self.store.start()
        self.intake = build_intake(config, self.store)
        cls = registry.sink_class(self.sink_config.kind)
        self.sink: CitizenSink[Any] = cls(self.sink_config, self.sink_config.options)
        if self.provider is not None:
            self.sink.provider = self.provider  # type: ignore[attr-defined]
        mailer = Mailer(config.smtp) if config.smtp is not None else None
        self.sink.bind(SinkEnv(config, self.store, mailer))
        self.forwarder = Forwarder(self.store, [(self.sink_config, self.sink)])
        await self.sink.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sink.close()
        await self.store.close()

    async def file(self, channel: Any, source: str, payload: bytes, content_type: str,
                   ref: str | None = None) -> str:
        """File one raw record; return its case code."""
        raw = RawRecord(channel=channel, source=source, source_ref=ref or f"r-{next(_refs)}",
                        payload=payload, content_type=content_type,
                        received_at=datetime(2026, 11, 26, 1, 30, tzinfo=UTC))
        result = await self.intake.submit(raw)
        assert result.case_code is not None, result
        return result.case_code

    async def mail(self, raw_mail: bytes) -> str:
        return await self.file("email", "mail", raw_mail, "message/rfc822")

    async def forward(self) -> int:
        """Deliver what is due to the sink, one batch."""
        return await self.forwarder.forward_once(self.sink_config, self.sink)

    async def make_due(self) -> None:
        """Bring every rescheduled entry forward to now (instead of waiting out the backoff)."""
        await self.store.write(lambda tx: tx.execute(
            "UPDATE outbox SET next_attempt_at = 0 WHERE state = 'pending'"))

    async def states(self) -> list[str]:
        rows = await self.store.read(lambda tx: tx.fetchall(
            "SELECT state FROM outbox ORDER BY id"))
        return [str(r[0]) for r in rows]

    async def notices(self) -> list[tuple[str, str, str | None]]:
        rows = await self.store.read(lambda tx: tx.fetchall(
            "SELECT case_code, state, reason FROM citizen_notices ORDER BY at, case_code"))
        return [(str(r[0]), str(r[1]), r[2]) for r in rows]

    async def enqueue_again(self, case_code: str) -> None:
        """A second outbox entry for the case (a replay, a second sink run): what must not
        send a second message."""
        def again(tx: Any) -> None:
            row = tx.fetchone("SELECT id FROM cases WHERE case_code = ?", (case_code,))
            outbox.enqueue(tx, [self.sink_config.name], int(row[0]))
        await self.store.write(again)
