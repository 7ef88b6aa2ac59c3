"""What one process of a worker group is (``server.workers``, gateway/server/workers.py).

With one worker the gateway is one process and does everything, as it always did. With
several, every worker serves HTTP on the socket the parent bound, and only the primary
(worker 0) also runs what must run once per machine: the forwarder, the pollers of
pulled sources, the retention, purge and report loops, the phone channel's overdue
watch, and the start-up chores (leases, look-up rows, reporter keys). This module is the
role a worker is given and the two pipes it shares with its siblings:

- the **life pipe**: the parent holds its write end and never writes; when the parent
  dies (even by SIGKILL) the kernel closes it, the workers read end-of-file and stop
  gracefully instead of serving on as orphans nobody supervises;
- the **wake pipe**: a worker that committed outbox entries writes a byte, the
  primary's forwarder wakes at once instead of at its next poll, so forwarding keeps up
  whichever worker took the submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from gateway.intake.shared_buckets import BucketArena
from gateway.store.group_write_lock import GroupWriteLock

WORKER_HEADER = "X-Minsheng-Worker"  # which worker answered (only with several workers)


@dataclass
class WorkerRole:
    """One process's part in the group; the default is the single-process gateway."""

    index: int = 0
    count: int = 1
    sock: socket.socket | None = None  # the listening socket the parent bound (None: bind)
    life_fd: int | None = None  # read end of the parent's life pipe
    wake_fds: tuple[int, int] | None = None  # (read, write) ends of the forwarder's wake pipe
    # The rate limits' buckets: the group's shared memory, made before the fork, so a limit
    # holds for the machine (gateway/intake/shared_buckets.py); one process: its own.
    buckets: BucketArena = field(default_factory=BucketArena)
    # On SQLite, the turns the group's writers take at the write lock, made before the
    # fork (gateway/store/group_write_lock.py); None: one process, or PostgreSQL.
    write_lock: GroupWriteLock | None = None
    _wake_pending: bool = field(default=False, init=False)

    @property
    def primary(self) -> bool:
        """Runs the once-per-machine loops (worker 0, or the only process)."""
        return self.index == 0

    def forwarder_waker(self, notify: Callable[[], None]) -> Callable[[], None]:
        """What the intake calls after committing outbox entries: the forwarder's own
        ``notify`` in the primary; in another worker, a byte down the wake pipe."""
        if self.primary or self.wake_fds is None:
            return notify
        return self._signal_primary

    def _signal_primary(self) -> None:
        # One byte per turn of the event loop, however many commits it resolved.
        if self._wake_pending:
            return
        self._wake_pending = True
        asyncio.get_running_loop().call_soon(self._write_wake)

    def _write_wake(self) -> None:
        self._wake_pending = False
        assert self.wake_fds is not None
        # A full pipe: the primary has bytes to read and wakes anyway; its poll is the floor.
        with contextlib.suppress(BlockingIOError):
            os.write(self.wake_fds[1], b"w")

    def listen_for_wakes(self, notify: Callable[[], None]) -> None:
        """In the primary: call ``notify`` whenever another worker wrote to the wake pipe."""
        if not self.primary or self.wake_fds is None:
            return
        fd = self.wake_fds[0]

        def drain() -> None:
            with contextlib.suppress(BlockingIOError):
                os.read(fd, 4096)
            notify()

        asyncio.get_running_loop().add_reader(fd, drain)

    def watch_parent(self, stop: Callable[[], None]) -> None:
        """Call ``stop`` once the parent is gone (end-of-file on the life pipe)."""
        if self.life_fd is None:
            return
        fd, loop = self.life_fd, asyncio.get_running_loop()

        def gone() -> None:
            loop.remove_reader(fd)
            stop()

        loop.add_reader(fd, gone)

    def stop_listening(self) -> None:
        """Remove the readers this role added (the loop is about to close)."""
        loop = asyncio.get_running_loop()
        for fd in (self.life_fd, self.wake_fds[0] if self.wake_fds and self.primary else None):
            if fd is not None:
                loop.remove_reader(fd)

    async def tag_response(self, request: web.Request, response: web.StreamResponse) -> None:
        """``on_response_prepare``: say which worker answered (operations, tests)."""
        response.headers[WORKER_HEADER] = str(self.index)
