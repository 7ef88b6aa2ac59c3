"""One IMAP connection (aioimaplib) with its failures mapped to the source error classes.

aioimaplib speaks the protocol; this module adds what a hotline mailbox needs and the
library lacks: STARTTLS (upgrade of the live transport), ``AUTHENTICATE PLAIN``, quoted
and modified-UTF-7 folder names, parsing of ``UID FETCH`` answers, and a connection
that fails fast: a lost connection ends the command waiting on it at once (aioimaplib
would wait for the command's timeout) with ``SourceUnavailable``.

Errors: refused, reset, lost connections and timeouts are ``SourceUnavailable`` (the
poller backs off and retries); a refused login, a missing folder, an untrusted
certificate or a server without STARTTLS are ``SourceMisconfigured``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, TypeVar

import aioimaplib  # type: ignore[import-untyped]

from adapters.imap_email.options import ImapEmailOptions
from gateway.model.errors import SourceMisconfigured, SourceUnavailable

T = TypeVar("T")
_FETCH_START = re.compile(rb"^(\d+) FETCH \(")
_LITERAL = re.compile(rb"(BODY\[[^\]]*\])(?:<\d+>)?\s*\{(\d+)\}$", re.IGNORECASE)
_MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
_INTERNALDATE = re.compile(
    r"^\s*(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$")


@dataclass(frozen=True)
class FolderInfo:
    uidvalidity: int
    uidnext: int | None
    exists: int


@dataclass
class Fetched:
    """One message of a ``UID FETCH`` answer."""

    uid: int
    size: int | None = None
    internaldate: datetime | None = None
    flags: list[str] = field(default_factory=list)
    sections: dict[str, bytes] = field(default_factory=dict)


def tls_context(options: ImapEmailOptions) -> ssl.SSLContext:
    """Certificate and host name checked unless ``verify_tls: false``; ``ca_file`` trusted."""
    cafile = str(options.ca_file) if options.ca_file is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not options.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def encode_mailbox(name: str) -> str:
    """A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3): ``已处理`` → ``&XfJZBHQG-``."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def mailbox_arg(name: str) -> str:
    """A folder name as a quoted command argument."""
    encoded = encode_mailbox(name).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{encoded}"'


def uid_set(uids: list[int]) -> str:
    """``1:3,7,9:10`` from ``[1, 2, 3, 7, 9, 10]``."""
    ranges: list[str] = []
    ordered = sorted(set(uids))
    start = previous = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        ranges.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(ranges)


def imap_date(day: date) -> str:
    """RFC 3501 ``date`` (``1-Nov-2026``): English month names whatever the locale."""
    month = next(name for name, number in _MONTHS.items() if number == day.month)
    return f"{day.day}-{month}-{day.year}"


def parse_internaldate(text: str) -> datetime | None:
    """``26-Nov-2019 04:54:00 +0800`` (locale-independent)."""
    match = _INTERNALDATE.match(text)
    if not match or match.group(2).title() not in _MONTHS:
        return None
    day, month, year = int(match.group(1)), _MONTHS[match.group(2).title()], int(match.group(3))
    offset = timedelta(hours=int(match.group(8)), minutes=int(match.group(9)))
    zone = timezone(-offset if match.group(7) == "-" else offset)
    try:
        when = datetime(year, month, day, int(match.group(4)), int(match.group(5)),
                        int(match.group(6)), tzinfo=zone)
    except ValueError:
        return None
    return when.astimezone(UTC)


def parse_fetch(lines: list[Any]) -> list[Fetched]:
    """The messages of a ``UID FETCH`` answer (aioimaplib's lines: text lines as bytes,
    literals as bytearray). Unsolicited answers without a UID are left out."""
    found: list[Fetched] = []
    texts: list[bytes] = []
    current: Fetched | None = None
    pending: str | None = None

    def finish() -> None:
        if current is not None:
            _attributes(current, b" ".join(texts))
            if current.uid:
                found.append(current)

    for line in lines[:-1]:  # the last line is the tagged status text
        if isinstance(line, bytearray):
            if current is not None and pending is not None:
                current.sections[pending] = bytes(line)
            pending = None
            continue
        start = _FETCH_START.match(line)
        if start:
            finish()
            current, texts, line = Fetched(uid=0), [], line[start.end():]
        elif current is None:
            continue
        literal = _LITERAL.search(line)
        if literal:
            pending = literal.group(1).decode("ascii").upper().replace(".PEEK", "")
            line = line[:literal.start()]
        texts.append(line)
    finish()
    return found


def _attributes(item: Fetched, text: bytes) -> None:
    if m := re.search(rb"\bUID (\d+)", text):
        item.uid = int(m.group(1))
    if m := re.search(rb"\bRFC822\.SIZE (\d+)", text):
        item.size = int(m.group(1))
    if m := re.search(rb'\bINTERNALDATE "([^"]+)"', text):
        item.internaldate = parse_internaldate(m.group(1).decode("ascii", "replace"))
    if m := re.search(rb"\bFLAGS \(([^)]*)\)", text):
        item.flags = m.group(1).decode("ascii", "replace").split()


class _PlainAuth(aioimaplib.Command):  # type: ignore[misc]
    """``AUTHENTICATE PLAIN``: the credentials go on the server's ``+`` continuation."""

    def __init__(self, tag: str, token: str, send: Callable[[str], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        super().__init__("AUTHENTICATE", tag, "PLAIN", loop=loop)
        self._token, self._send, self._sent = token, send, False

    def flush(self) -> None:
        if not self._sent and any(isinstance(x, bytes) and x.startswith(b"+")
                                  for x in self._resp_lines):
            self._sent = True
            self._send(self._token)


def _text(response: Any) -> str:
    lines = [x for x in getattr(response, "lines", []) if isinstance(x, bytes)]
    return (lines[-1] if lines else b"").decode("utf-8", "replace")[:200]


class ImapSession:
    """One connection: ``open``, commands, ``close``. Not reused after a failure."""

    def __init__(self, options: ImapEmailOptions, source: str) -> None:
        self.options = options
        self.source = source
        self.where = f"{options.host}:{options.server_port}"
        self._client: Any = None
        self._lost = asyncio.Event()

    # -- plumbing ---------------------------------------------------------------------

    @property
    def protocol(self) -> Any:
        return self._client.protocol

    @property
    def capabilities(self) -> set[str]:
        return {str(c).upper() for c in self.protocol.capabilities}

    def _on_lost(self, exc: Exception | None) -> None:
        self._lost.set()

    async def _call(self, what: str, awaitable: Awaitable[T], limit_s: float | None = -1.0) -> T:
        """Run one step; a lost connection or no answer in time is ``SourceUnavailable``.

        ``limit_s`` defaults to the option ``timeout_s`` (plus a margin: aioimaplib
        applies it too); ``None`` means no overall limit (a transfer: aioimaplib stops
        it after ``timeout_s`` of silence)."""
        limit = self.options.timeout_s + 5 if limit_s == -1.0 else limit_s
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({task, lost}, timeout=limit,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if task not in done:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            state = "connection lost (连接中断)" if self._lost.is_set() else \
                f"no answer within {limit:g} s (超时)"
            raise SourceUnavailable(f"IMAP {self.where}: {what}: {state}")
        try:
            return task.result()
        except ssl.SSLCertVerificationError as exc:
            raise SourceMisconfigured(
                f"IMAP {self.where}: certificate not trusted (证书校验失败): "
                f"{exc.verify_message}; set ca_file to the CA that signed it") from None
        except (TimeoutError, aioimaplib.CommandTimeout):
            raise SourceUnavailable(f"IMAP {self.where}: {what}: timed out (超时)") from None
        except (OSError, aioimaplib.AioImapException, EOFError) as exc:
            raise SourceUnavailable(
                f"IMAP {self.where}: {what}: {type(exc).__name__}: {self._redact(str(exc))} "
                "(无法连接)") from None

    def _redact(self, text: str) -> str:
        """An aioimaplib error may quote the command it was running: never the password."""
        password = self.options.password.get_secret_value()
        for secret in (aioimaplib.quoted(password), password):
            text = text.replace(secret, "***")
        return text[:300]

    def _check(self, response: Any, what: str) -> Any:
        if response.result != "OK":
            raise SourceUnavailable(f"IMAP {self.where}: {what} failed: {_text(response)}")
        return response

    # -- connecting -------------------------------------------------------------------

    async def open(self) -> None:
        options = self.options
        context = tls_context(options) if options.security == "imaps" else None
        self._client = aioimaplib.IMAP4(
            options.host, options.server_port, timeout=options.timeout_s,
            conn_lost_cb=self._on_lost, ssl_context=context,
        )
        await self._call("connect", self._client.wait_hello_from_server())
        if options.security == "starttls":
            await self._starttls()
        await self._authenticate()

    async def _starttls(self) -> None:
        if "STARTTLS" not in self.capabilities:
            raise SourceMisconfigured(
                f"IMAP {self.where} does not offer STARTTLS (服务器不支持 STARTTLS): "
                "use security: imaps")
        protocol = self.protocol
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._call("STARTTLS", protocol.execute(command))
        if response.result != "OK":
            raise SourceMisconfigured(f"IMAP {self.where}: STARTTLS refused: {_text(response)}")
        loop = asyncio.get_running_loop()
        protocol.transport = await self._call("TLS handshake", loop.start_tls(
            protocol.transport, protocol, tls_context(self.options),
            server_hostname=self.options.host))
        await self._call("CAPABILITY", protocol.capability())

    async def _authenticate(self) -> None:
        options = self.options
        user, password = options.username, options.password.get_secret_value()
        if options.auth == "plain":
            if "AUTH=PLAIN" not in self.capabilities:
                raise SourceMisconfigured(f"IMAP {self.where} does not offer AUTH=PLAIN")
            response = await self._call("AUTHENTICATE PLAIN", self._plain(user, password))
        else:
            if "LOGINDISABLED" in self.capabilities:
                raise SourceMisconfigured(
                    f"IMAP {self.where} refuses LOGIN on this connection (LOGINDISABLED): "
                    "use security: starttls or imaps")
            response = await self._call("LOGIN", self._login(user, password))
        if response.result != "OK":
            text = _text(response)
            if "[UNAVAILABLE]" in text.upper() or "TEMPORARY" in text.upper():
                raise SourceUnavailable(f"IMAP {self.where}: login deferred: {text}")
            raise SourceMisconfigured(
                f"IMAP {self.where}: login refused for {user} (登录被拒绝): {text}")
        await self._call("CAPABILITY", self.protocol.capability())

    async def _login(self, user: str, password: str) -> Any:
        """``LOGIN "user" "password"``, both quoted (aioimaplib quotes only the password and
        would scrub only its unquoted form from its trace)."""
        protocol = self.protocol
        secret = aioimaplib.quoted(password)
        command = aioimaplib.Command("LOGIN", protocol.new_tag(), aioimaplib.quoted(user),
                                     secret, loop=protocol.loop)
        async with protocol.state_condition:
            response = await protocol.execute(command, scrub=secret)
            if response.result == "OK":
                protocol.state = aioimaplib.AUTH
            protocol.state_condition.notify_all()
        return response

    async def _plain(self, user: str, password: str) -> Any:
        protocol = self.protocol
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
        command = _PlainAuth(protocol.new_tag(), token,
                             lambda data: protocol.send(data, scrub=data), protocol.loop)
        async with protocol.state_condition:
            response = await protocol.execute(command)
            if response.result == "OK":
                protocol.state = aioimaplib.AUTH
            protocol.state_condition.notify_all()
        return response

    async def close(self) -> None:
        """Log out politely (briefly), then drop the connection whatever happened."""
        if self._client is None:
            return
        if not self._lost.is_set() and self.protocol.state in (aioimaplib.AUTH,
                                                               aioimaplib.SELECTED):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.logout(), 2.0)
        for task in [*self._client.tasks, *self.protocol.tasks]:  # e.g. an IDLE cut short
            task.cancel()
        transport = self.protocol.transport
        if transport is not None:  # nothing is left to send: no TLS goodbye to wait for
            transport.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), 2.0)
        self._client = None

    # -- commands ---------------------------------------------------------------------

    async def select(self, folder: str) -> FolderInfo:
        response = await self._call(f"SELECT {folder}", self._client.select(mailbox_arg(folder)))
        if response.result != "OK":
            raise SourceMisconfigured(
                f"IMAP {self.where}: folder {folder!r} cannot be opened (文件夹不存在或无权限): "
                f"{_text(response)}")
        text = b"\n".join(x for x in response.lines if isinstance(x, bytes))
        validity = re.search(rb"\[UIDVALIDITY (\d+)\]", text)
        uidnext = re.search(rb"\[UIDNEXT (\d+)\]", text)
        exists = re.search(rb"(?m)^(\d+) EXISTS", text)
        if validity is None:
            raise SourceUnavailable(f"IMAP {self.where}: {folder}: no UIDVALIDITY in SELECT")
        return FolderInfo(int(validity.group(1)), int(uidnext.group(1)) if uidnext else None,
                          int(exists.group(1)) if exists else 0)

    async def folder_exists(self, folder: str) -> bool:
        response = await self._call(f"STATUS {folder}",
                                    self._client.status(mailbox_arg(folder), "(UIDVALIDITY)"))
        return bool(response.result == "OK")

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid`` in the selected folder, ascending."""
        uids = await self._uid_search("UID", f"{last_uid + 1}:*")
        return [u for u in uids if u > last_uid]

    async def uids_since(self, day: date) -> list[int]:
        """UIDs of the mail the server received on ``day`` or later (``SINCE``, by its
        INTERNALDATE and the server's own time zone), ascending."""
        return await self._uid_search("SINCE", imap_date(day))

    async def _uid_search(self, *criteria: str) -> list[int]:
        response = self._check(await self._call(
            "UID SEARCH", self._client.uid_search(*criteria, charset=None)), "UID SEARCH")
        uids: set[int] = set()
        for line in response.lines[:-1]:
            if isinstance(line, bytes) and re.fullmatch(rb"[\d ]*", line):
                uids.update(int(x) for x in line.split())
        return sorted(uids)

    async def fetch(self, uids: list[int], items: str) -> list[Fetched]:
        """``UID FETCH`` of ``items``; the timeout is for silence, not for the transfer."""
        response = self._check(await self._call(
            "UID FETCH", self._client.uid("fetch", uid_set(uids), f"({items})"), limit_s=None),
            "UID FETCH")
        return parse_fetch(list(response.lines))

    async def mark_seen(self, uid: int) -> None:
        self._check(await self._call("UID STORE", self._client.uid(
            "store", str(uid), "+FLAGS.SILENT", "(\\Seen)")), "UID STORE \\Seen")

    async def move(self, uid: int, folder: str) -> None:
        target = mailbox_arg(folder)
        if "MOVE" in self.capabilities:
            self._check(await self._call("UID MOVE", self._client.uid("move", str(uid), target)),
                        f"UID MOVE to {folder}")
            return
        if "UIDPLUS" not in self.capabilities:
            raise SourceMisconfigured(
                f"IMAP {self.where} has neither MOVE nor UIDPLUS: post_action move would "
                "expunge other deleted mail; use post_action seen")
        self._check(await self._call("UID COPY", self._client.uid("copy", str(uid), target)),
                    f"UID COPY to {folder}")
        await self._call("UID STORE", self._client.uid(
            "store", str(uid), "+FLAGS.SILENT", "(\\Deleted)"))
        self._check(await self._call("UID EXPUNGE", self._client.uid("expunge", str(uid))),
                    "UID EXPUNGE")

    # -- IDLE -------------------------------------------------------------------------

    @property
    def has_idle(self) -> bool:
        return "IDLE" in self.capabilities

    async def idle(self, seconds: float) -> bool:
        """One IDLE of at most ``seconds``: True when the server announced new mail."""
        client = self._client
        idle = await self._call("IDLE", client.idle_start(timeout=seconds))
        try:
            push = await self._call("IDLE", client.wait_server_push(seconds + 10),
                                    limit_s=None)
        finally:
            if client.has_pending_idle() and not self._lost.is_set():
                client.idle_done()
        await self._call("IDLE DONE", idle)
        if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
            return False
        return any(isinstance(x, bytes) and x.endswith(b"EXISTS") for x in push)
