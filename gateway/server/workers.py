"""``server.workers: N``: N intake processes accepting on one listening socket.

A pre-forked accept, the design of docs/operations.md ("All the cores"): this parent
applies the store's migrations once, binds the socket, opens the life and wake pipes
(gateway/server/worker_role.py) and the memory the workers share (the rate limits'
buckets; on SQLite the writers' turns) and forks the workers; each inherits the listening
socket and accepts from its one queue, so the kernel hands a connection to whichever
worker is free, and a worker that dies leaves no queued connection behind (with
SO_REUSEPORT each socket has its own queue, and a dead worker's queued connections are
reset). The parent serves nothing and runs no event loop: it waits for signals, starts
again a worker that died (worker 0 is again the primary), and on SIGTERM or SIGINT
stops every worker gracefully and exits when they have.

Each worker is a whole gateway (gateway/server/app.py ``Gateway``) writing to the store
itself: on PostgreSQL like replicas; on SQLite under the database's write lock, each
worker's group commit one ``BEGIN IMMEDIATE`` transaction after another.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import structlog

from gateway.intake.shared_buckets import BucketArena
from gateway.server.app import Gateway, open_store
from gateway.server.http_edge import listen_backlog
from gateway.server.worker_role import WorkerRole
from gateway.store.group_write_lock import GroupWriteLock
from gateway.support import web_page  # noqa: F401 - see WorkerGroup.run
from gateway.support.config import GatewayConfig
from gateway.support.logging import configure_logging, get_logger

log = get_logger("gateway.workers")

SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
RESTART_DELAY_S = (0.5, 1.0, 2.0, 5.0, 10.0)  # a worker dying again and again: back off
STABLE_S = 30.0  # a worker that ran this long starts its back-off afresh when it dies
STOP_GRACE_S = 10.0  # beyond server.shutdown_timeout_s, then SIGKILL


@dataclass
class _Slot:
    """One worker's place in the group: its current process and its restarts."""

    index: int
    pid: int | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None


@dataclass
class WorkerGroup:
    """The parent of ``count`` workers."""

    config: GatewayConfig
    count: int
    sock: socket.socket = field(init=False)
    slots: list[_Slot] = field(init=False)
    stopping: bool = field(init=False, default=False)
    _life: tuple[int, int] = field(init=False)
    _wake: tuple[int, int] = field(init=False)
    _buckets: BucketArena = field(init=False)
    _write_lock: GroupWriteLock | None = field(init=False)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the exit status (0: every worker stopped cleanly)."""
        engine = asyncio.run(migrate(self.config))  # once, before any worker opens the store
        # Without a configured identifier key, the local key file is made here, once:
        # workers making it together could read it before its maker wrote it.
        self.config.privacy.keys(self.config.data_dir)
        # gateway.support.web_page, imported above, drew the key of the citizen pages'
        # forms (when none is configured) before the fork: a page one worker served is
        # accepted by whichever worker its form posts to.
        self.sock = bind(self.config)
        self._life = os.pipe()
        self._wake = os.pipe()
        self._buckets = BucketArena(shared=True)  # every worker's rate limits, one memory
        self._write_lock = GroupWriteLock() if engine == "sqlite" else None
        for fd in self._wake:
            os.set_blocking(fd, False)
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # taken by sigtimedwait below
        self.slots = [_Slot(i) for i in range(self.count)]
        for slot in self.slots:
            self._fork(slot)
        log.info("workers_started", workers=self.count, listen=self.config.server.listen,
                 pids=[s.pid for s in self.slots])
        while not self.stopping:
            self._wait_for_signal(self._next_restart_in())
            self._restart_due()
        return self._stop_all()

    # -- the parent's loop ---------------------------------------------------------------

    def _wait_for_signal(self, timeout: float | None) -> None:
        info = signal.sigtimedwait(SIGNALS, 3600.0 if timeout is None else max(timeout, 0.0))
        if info is None:
            return
        if info.si_signo in (signal.SIGTERM, signal.SIGINT):
            log.info("workers_stopping", signal=signal.Signals(info.si_signo).name)
            self.stopping = True
        self._reap()

    def _reap(self) -> None:
        """Collect every worker that exited; schedule its restart unless stopping."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = None
            if self.stopping:
                continue
            now = time.monotonic()
            slot.failures = 1 if now - slot.started >= STABLE_S else slot.failures + 1
            delay = RESTART_DELAY_S[min(slot.failures, len(RESTART_DELAY_S)) - 1]
            slot.restart_at = now + delay
            log.warning("worker_exited", worker=slot.index, pid=pid,
                        status=describe_status(status), restart_in_s=delay)

    def _next_restart_in(self) -> float | None:
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        return min(due) - time.monotonic() if due else None

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if not self.stopping and slot.restart_at is not None and slot.restart_at <= now:
                slot.restart_at = None
                self._fork(slot)
                log.info("worker_restarted", worker=slot.index, pid=slot.pid)

    def _stop_all(self) -> int:
        """SIGTERM every worker, wait for them (SIGKILL after the grace), close up."""
        for slot in self.slots:
            if slot.pid is not None:
                os.kill(slot.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.server.shutdown_timeout_s + STOP_GRACE_S
        worst = 0
        while any(s.pid is not None for s in self.slots):
            left = deadline - time.monotonic()
            if left <= 0:
                for slot in self.slots:
                    if slot.pid is not None:
                        log.error("worker_killed", worker=slot.index, pid=slot.pid)
                        os.kill(slot.pid, signal.SIGKILL)
                left = 5.0
            signal.sigtimedwait({signal.SIGCHLD}, left)
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    pid = 0
                    for slot in self.slots:
                        slot.pid = None
                if pid == 0:
                    break
                for slot in self.slots:
                    if slot.pid == pid:
                        slot.pid = None
                        worst = max(worst, 0 if status == 0 else 1)
        self.sock.close()
        for fd in (*self._life, *self._wake):
            os.close(fd)
        log.info("workers_stopped", status=worst)
        return worst

    # -- one worker ------------------------------------------------------------------------

    def _fork(self, slot: _Slot) -> None:
        slot.started = time.monotonic()
        pid = os.fork()
        if pid:
            slot.pid = pid
            return
        status = 1
        try:
            status = self._serve_as(slot.index)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def _serve_as(self, index: int) -> int:
        """In the child: undo the parent's signal set-up, serve as worker ``index``."""
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.close(self._life[1])  # only the parent holds the write end: its death is EOF
        sys.stderr = whole_lines(sys.stderr)
        configure_logging(self.config.log.format, self.config.log.level)  # on the new stderr
        structlog.contextvars.bind_contextvars(worker=index)
        role = WorkerRole(index, self.count, self.sock, self._life[0], self._wake, self._buckets,
                          self._write_lock)
        try:
            asyncio.run(Gateway(self.config, role).run_forever())
        except KeyboardInterrupt:
            return 0
        except BaseException as exc:
            log.error("worker_failed", worker=index, error=repr(exc))
            return 1
        return 0


async def migrate(config: GatewayConfig) -> str:
    """Open the store once (which applies its migrations) and close it again, so the
    workers start on the current schema and none of them races another to migrate;
    returns its engine."""
    store = open_store(config)
    await store.start()
    await store.close()
    return store.engine


def bind(config: GatewayConfig) -> socket.socket:
    """The listening socket every worker accepts from."""
    server = config.server
    family = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM,
                                flags=socket.AI_PASSIVE)[0][0]
    sock = socket.create_server((server.host, server.port), family=family,
                                backlog=listen_backlog(server.max_connections))
    sock.setblocking(False)
    return sock


def whole_lines(stream: TextIO) -> TextIO:
    """``stream``'s file descriptor, written a whole line per ``write(2)``: the workers
    share one stderr, and a log line written in pieces (a print is the text, then its
    newline; unbuffered under ``PYTHONUNBUFFERED``) would interleave with another
    worker's. Lines up to 64 KiB go out whole."""
    raw = io.FileIO(stream.fileno(), "w", closefd=False)
    return io.TextIOWrapper(io.BufferedWriter(raw, 65536), encoding="utf-8",
                            errors="backslashreplace", line_buffering=True)


def describe_status(status: int) -> str:
    """A wait status as operations read it: ``exit 1`` or ``signal SIGKILL``."""
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def run_gateway(config: GatewayConfig) -> int:
    """``minsheng run``: one process, or a worker group (``server.workers`` > 1)."""
    count = config.server.worker_count
    if count == 1:
        asyncio.run(Gateway(config).run_forever())
        return 0
    return WorkerGroup(config, count).run()
