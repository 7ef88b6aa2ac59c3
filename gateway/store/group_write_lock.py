"""One SQLite writer at a time among the workers of a group, handed over at once.

Why: SQLite's own write lock does not queue its waiters. A worker whose ``BEGIN
IMMEDIATE`` finds it taken sleeps in the busy handler's steps (1, 2, 5, 10, 15, 20, 25 …
100 ms) and tries again; meanwhile the worker holding it commits and, its next batch
ready, takes it again at once. The waiter sleeps past the moments it was free, and a
group's p99 grew to seconds (bench/README.md, "Workers").

How: the writer thread of each worker takes a POSIX record lock (``fcntl.lockf``) on a
byte of a memfd (``gateway.support.shared_file``) the group's parent made before the
fork, around each batch's transaction. Waiters block in the kernel and are woken when
the lock is let go, so SQLite's lock is free whenever a worker asks for it. A worker
killed while holding it leaves it free: the kernel drops the locks of a process that
dies. Other processes on the store (a ``minsheng`` command) do not take it and meet
SQLite's busy handler, as before. PostgreSQL needs none of this: its writers do not
wait for each other's transactions.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from gateway.support.shared_file import shared_file


class GroupWriteLock:
    """The lock the writers of one worker group take in turn (see the module)."""

    def __init__(self) -> None:
        self.fd = shared_file("minsheng-sqlite-writer", self)
        os.ftruncate(self.fd, 1)
        # This process's waits for its turn (/metrics: whether the lock is the limit).
        self.waited_s = 0.0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """This process's writer alone, until the block ends (POSIX record locks are per
        process: take it from the one writer thread only)."""
        asked = time.perf_counter()
        fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, 0, os.SEEK_SET)
        self.waited_s += time.perf_counter() - asked
        try:
            yield
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 0, os.SEEK_SET)
