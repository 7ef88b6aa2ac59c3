"""A real SMTP server for the tests: aiosmtpd on a free loopback port, in its own thread,
speaking STARTTLS (required) with a certificate signed by a test CA (the one of
tests/dovecot.py), or implicit TLS, and AUTH PLAIN/LOGIN (required, only after TLS). Every
accepted message is kept with how it arrived."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.dovecot import make_certificates
from tests.pg import free_port

USER = "gateway@12345.example.cn"
PASSWORD = "smtp-s3cret-pw"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class SmtpServer:
    port: int
    ca_file: Path
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0  # answer the next N messages 451 (try again later), keep nothing

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The gateway's ``smtp`` block for this server."""
        return {"host": "127.0.0.1", "port": self.port, "security": "starttls",
                "ca_file": str(self.ca_file), "username": USER, "password": PASSWORD,
                "from_address": "hotline@12345.example.cn", "from_name": "民声网关 Gateway",
                "timeout_s": 10, **overrides}


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.server.fail_next > 0:
            self.server.fail_next -= 1
            return "451 4.3.0 Temporary failure, try again later"
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        self.server.received.append(Received(
            sender=str(envelope.mail_from), recipients=list(envelope.rcpt_tos),
            message=message, tls=session.ssl is not None, login=login))
        return "250 OK"


def _authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD)
    return AuthResult(success=ok, handled=False, auth_data=USER if ok else None)


class _Controller(Controller):
    """aiosmtpd's controller, closing the server's connections before it stops its loop:
    its own stop leaves them to the garbage collector (a ResourceWarning, an error here)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        session = super().factory()
        self.sessions.append(session)
        return session

    async def _close_sessions(self) -> None:
        for session in self.sessions:
            if session.transport is not None:
                session.transport.abort()
        for _ in range(5):  # connection_lost runs on the loop's next turns
            await asyncio.sleep(0)

    def stop(self, no_assert: bool = False) -> None:
        asyncio.run_coroutine_threadsafe(self._close_sessions(), self.loop).result(10)
        super().stop(no_assert)


@contextmanager
def smtp_server(folder: Path, *, implicit_tls: bool = False) -> Iterator[SmtpServer]:
    """Run the server until the block ends; ``implicit_tls``: TLS from the first byte
    (``security: tls``) instead of STARTTLS, and no AUTH (aiosmtpd offers AUTH only after
    STARTTLS when it requires TLS for it)."""
    ca_file, cert, key = make_certificates(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SmtpServer(port=free_port(), ca_file=ca_file)
    tls: dict[str, Any] = {"ssl_context": context} if implicit_tls else {
        "tls_context": context, "require_starttls": True, "authenticator": _authenticate,
        "auth_required": True, "auth_require_tls": True}
    controller = _Controller(_Handler(server), hostname="127.0.0.1", port=server.port, **tls)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
