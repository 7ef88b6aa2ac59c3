"""The SQLite writers' turns in a worker group (gateway/store/group_write_lock.py), between
real processes forked from the test as the group's parent forks its workers: one at a
time, and a writer killed holding its turn does not stall the others."""

from __future__ import annotations

import fcntl
import os
import signal

import pytest

from gateway.store.group_write_lock import GroupWriteLock
from tests.test_shared_buckets import child, exit_status, read_all


def test_one_writer_at_a_time() -> None:
    """Three processes each add 1 to a number in shared memory 300 times, reading and
    writing it back with a pause between: under the lock no addition is lost."""
    lock = GroupWriteLock()
    counter = os.memfd_create("counter")
    os.pwrite(counter, b"0".ljust(16), 0)

    def adds(out: int) -> None:
        for _ in range(300):
            with lock.held():
                value = int(os.pread(counter, 16, 0))
                os.sched_yield()  # invite the others in, were it not held
                os.pwrite(counter, str(value + 1).encode().ljust(16), 0)
        os.write(out, b"done")

    with child(adds) as (a, fa), child(adds) as (b, fb), child(adds) as (c, fc):
        assert [read_all(fd) for fd in (fa, fb, fc)] == [b"done"] * 3
        assert [exit_status(pid) for pid in (a, b, c)] == [0, 0, 0]
    assert int(os.pread(counter, 16, 0)) == 900


def test_a_writer_killed_holding_its_turn_leaves_it_free() -> None:
    lock = GroupWriteLock()

    def holds(out: int) -> None:
        with lock.held():
            os.write(out, b"held")
            signal.pause()

    with child(holds) as (pid, fd):
        assert os.read(fd, 16) == b"held"
        with pytest.raises(OSError):  # the living child's turn
            fcntl.lockf(lock.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0, os.SEEK_SET)
        os.kill(pid, signal.SIGKILL)
        assert exit_status(pid) == -signal.SIGKILL
    with lock.held():  # free again: no wait
        pass
