"""A throwaway Dovecot IMAP server on loopback for the tests (Debian's ``dovecot-imapd``).

``Dovecot()`` writes a temporary configuration: one user with a password, Maildir mail
under a temporary folder, a self-signed CA and a server certificate for ``127.0.0.1`` /
``localhost`` made at start, and two listeners on free loopback ports: ``imap_port``
(plain, with STARTTLS) and ``imaps_port`` (implicit TLS). ``start``/``stop`` run and stop
``dovecot -F -c CONF`` (a restart keeps the mail); ``reset_uidvalidity`` makes a folder
forget its UIDs, as a restored or rebuilt mailbox does. ``add_user`` gives a test its own
empty mailbox on a shared server. ``Mailbox`` is the test's own IMAP client, to APPEND
mail and look at folders and flags.

As root the mail belongs to ``nobody`` (Dovecot refuses to access mail as root) and
Dovecot's login and internal processes use the Debian package's ``dovenull`` and
``dovecot`` users; as any other user everything runs as that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aioimaplib  # type: ignore[import-untyped]

from adapters.imap_email.client import mailbox_arg
from tests.pg import free_port

DOVECOT = "/usr/sbin/dovecot"
USER = "hotline@12345.example.cn"
SPARE_USERS = 40
PASSWORD = "s3cret \"imap\" \\pw"  # a quote and a backslash: the LOGIN quoting is exercised


def available() -> bool:
    return Path(DOVECOT).exists() and shutil.which("openssl") is not None


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate it signed for 127.0.0.1 and localhost."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=Minsheng Test CA", "-keyout", "ca.key", "-out", "ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "server.key", "-out", "server.csr", cwd=folder)
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n",
        encoding="ascii",
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
             cwd=folder)
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = minsheng-test-{imap_port}
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
{users}
ssl = yes
ssl_cert = <{dir}/server.crt
ssl_key = <{dir}/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_failure_delay = 0
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
mailbox_idle_check_interval = 1 secs
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


class Dovecot:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="minsheng-dovecot-"))
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.user, self.password = USER, PASSWORD
        self.proc: subprocess.Popen[bytes] | None = None
        self.ca_file, _, _ = make_certificates(self.dir)
        self.config = self.dir / "dovecot.conf"
        self._write_config()

    def _write_config(self) -> None:
        uid, gid = os.getuid(), os.getgid()
        if os.geteuid() == 0:
            users = "default_login_user = dovenull\ndefault_internal_user = dovecot"
            uid, gid = pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid
            os.chmod(self.dir, 0o755)
        else:
            name = getpass.getuser()
            users = f"default_login_user = {name}\ndefault_internal_user = {name}"
        home = self.dir / "home"
        home.mkdir()
        os.chown(home, uid, gid)  # Dovecot makes each user's home under it
        self.config.write_text(_CONFIG.format(
            dir=self.dir, users=users, uid=uid, gid=gid,
            imap_port=self.imap_port, imaps_port=self.imaps_port,
        ), encoding="utf-8")
        users = [self.user] + [f"user{n:02d}@12345.example.cn" for n in range(1, SPARE_USERS)]
        (self.dir / "passwd").write_text(
            "".join(f"{u}:{{PLAIN}}{self.password}::::::\n" for u in users), encoding="utf-8")
        self._next_user = 0

    def add_user(self) -> str:
        """A login of its own (same password, an empty mailbox) for one test. The users
        are all in the password file from the start: Dovecot re-reads the file at most
        once a second, so one added now might not be known yet."""
        self._next_user += 1
        if self._next_user >= SPARE_USERS:
            raise RuntimeError("no spare test user left: raise SPARE_USERS")
        return f"user{self._next_user:02d}@12345.example.cn"

    def maildir(self, user: str | None = None) -> Path:
        return self.dir / "home" / (user or self.user) / "Maildir"

    def folder_dir(self, folder: str, user: str | None = None) -> Path:
        root = self.maildir(user)
        return root if folder.upper() == "INBOX" else root / f".{folder}"

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None, "already running"
        log = open(self.dir / "stdout.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # its own process group
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"dovecot exited:\n{self.log_tail()}")
            if self._listening(self.imap_port) and self._listening(self.imaps_port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen within {timeout}s:\n{self.log_tail()}")

    @staticmethod
    def _listening(port: int) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        return False

    def stop(self) -> None:
        """Stop the server as a service manager does: SIGTERM to every process of its
        group, then SIGKILL to what is left, so every IMAP connection is cut (the imap
        processes of a foreground master outlive it otherwise)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)  # as systemd does: the whole group
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._group_alive(self.proc.pid):
            time.sleep(0.02)
        self.proc = None

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True

    def pause(self) -> None:
        """SIGSTOP every server process: connections stay open, nothing answers."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def reset_uidvalidity(self, folder: str = "INBOX", user: str | None = None) -> None:
        """Forget the folder's UIDs (server stopped meanwhile): it comes back with a new
        UIDVALIDITY and new UIDs for the same mails."""
        running = self.proc is not None
        self.stop()
        path = self.folder_dir(folder, user)
        for name in os.listdir(path):
            if name.startswith("dovecot-uidlist") or name.startswith("dovecot.index"):
                (path / name).unlink()
        time.sleep(1.1)  # UIDVALIDITY is time-based: make sure it changes
        if running:
            self.start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.dir / "dovecot.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Mailbox:
    """A test's own IMAP client (IMAPS, the test CA): APPEND mail, make folders, read flags.

    ``async with Mailbox(server, user) as box: await box.append(data)``
    """

    def __init__(self, server: Dovecot, user: str | None = None) -> None:
        self.server = server
        self.user = user or server.user
        self.client: Any = None

    async def __aenter__(self) -> Mailbox:
        context = ssl.create_default_context(cafile=str(self.server.ca_file))
        self._closed = asyncio.Event()
        self.client = aioimaplib.IMAP4("127.0.0.1", self.server.imaps_port, timeout=20,
                                       conn_lost_cb=lambda exc: self._closed.set(),
                                       ssl_context=context)
        await self.client.wait_hello_from_server()
        response = await self.client.login(self.user, self.server.password)
        assert response.result == "OK", response
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.logout(), 5)
        if self.client.protocol.transport is not None:
            self.client.protocol.transport.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), 5)

    async def append(self, data: bytes, folder: str = "INBOX",
                     received: datetime | None = None) -> int:
        """APPEND ``data`` (CRLF line ends are made here) and return its UID; ``received``
        sets its INTERNALDATE (default: now)."""
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        response = await self.client.append(data, mailbox=mailbox_arg(folder), date=received)
        assert response.result == "OK", response
        found = re.search(rb"APPENDUID \d+ (\d+)", b" ".join(response.lines))
        return int(found.group(1)) if found else 0

    async def create(self, folder: str) -> None:
        response = await self.client.create(mailbox_arg(folder))
        assert response.result == "OK", response

    async def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID → flags of every mail in ``folder``."""
        response = await self.client.select(mailbox_arg(folder))
        assert response.result == "OK", response
        if b"0 EXISTS" in response.lines:
            return {}
        response = await self.client.uid("fetch", "1:*", "(UID FLAGS)")
        assert response.result == "OK", response
        found = {}
        for line in response.lines:
            match = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)",
                              bytes(line))
            if match:
                uid = match.group(1) or match.group(4)
                flags = match.group(2) if match.group(1) else match.group(3)
                found[int(uid)] = set(flags.decode().split())
        return found
