"""Rate-limit buckets shared by the processes of a worker group (gateway/intake/shared_buckets.py).

Real processes forked from the test, as the group's parent forks its workers: they take
from one limit, find the regions the others claimed, and a process killed while it held
a bucket's lock leaves it free. The whole group over HTTP: tests/test_workers.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import signal
import warnings
from collections.abc import Callable, Iterator

import pytest

from gateway.intake.ratelimit import RateLimiter
from gateway.intake.shared_buckets import WAYS, BucketArena, BucketTable
from gateway.support.rate_limits import RateLimitOptions

LIMIT = RateLimitOptions(per_minute=0.01, burst=10, exempt=[])
CLIENT = ipaddress.ip_address("203.0.113.9")


@contextlib.contextmanager
def child(work: Callable[[int], None]) -> Iterator[tuple[int, int]]:
    """A forked process running ``work(write_fd)``; yields (pid, read_fd)."""
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns of forking a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read)
            work(write)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    try:
        yield pid, read
    finally:
        os.close(read)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def exit_status(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_processes_take_from_one_limit() -> None:
    """Four processes each try the whole burst: together they get it once, not four times."""
    arena = BucketArena(shared=True)

    def tries(out: int) -> None:
        limiter = RateLimiter(LIMIT, buckets=arena.table("source:web", LIMIT.max_clients))
        allowed = sum(limiter.check(CLIENT).allowed for _ in range(LIMIT.burst))
        os.write(out, str(allowed).encode())

    with contextlib.ExitStack() as stack:
        children = [stack.enter_context(child(tries)) for _ in range(4)]
        allowed = [int(read_all(fd)) for _, fd in children]
        assert [exit_status(pid) for pid, _ in children] == [0, 0, 0, 0]
    assert sum(allowed) == LIMIT.burst, allowed
    # the parent, a fifth process, finds the bucket empty too
    parent = RateLimiter(LIMIT, buckets=arena.table("source:web", LIMIT.max_clients))
    assert not parent.check(CLIENT).allowed


def test_a_region_claimed_by_one_process_is_found_by_the_others() -> None:
    arena = BucketArena(shared=True)
    mine = arena.table("lookup:client", 100)

    def claims(out: int) -> None:
        theirs = arena.table("lookup:code", 50)
        RateLimiter(LIMIT, buckets=theirs).take("CY-20240506-W-000009-4")
        found = arena.table("lookup:client", 100)
        os.write(out, f"{theirs.offset} {found.offset}".encode())

    with child(claims) as (pid, fd):
        theirs_offset, found_offset = map(int, read_all(fd).split())
        assert exit_status(pid) == 0
    assert found_offset == mine.offset  # the parent's region, not a second one
    code = arena.table("lookup:code", 50)
    assert code.offset == theirs_offset != mine.offset
    assert code.count() == 1 and mine.count() == 0
    web = arena.table("source:web", 1000)  # claimed after others: a size of its own
    assert web.offset not in (mine.offset, code.offset) and web.capacity == 2000


def test_a_process_killed_holding_a_bucket_does_not_stall_the_others() -> None:
    """The lock is the kernel's record lock: taken while its holder lives, gone when it
    dies, even by SIGKILL."""
    arena = BucketArena(shared=True)
    table = arena.table("source:web", LIMIT.max_clients)

    def holds(out: int) -> None:
        arena.lock(table.offset, table.sets * table.set_bytes, fcntl.LOCK_EX)
        os.write(out, b"locked")
        signal.pause()

    with child(holds) as (pid, fd):
        assert os.read(fd, 16) == b"locked"
        with pytest.raises(OSError):  # held by the living child
            fcntl.lockf(arena.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, table.set_bytes,
                        table.offset, os.SEEK_SET)
        os.kill(pid, signal.SIGKILL)
        assert exit_status(pid) == -signal.SIGKILL
    assert RateLimiter(LIMIT, buckets=table).check(CLIENT).allowed


def test_a_full_set_forgets_the_client_seen_longest_ago() -> None:
    """``max_clients`` bounds the memory; a forgotten client only starts afresh."""
    now = [0.0]
    table: BucketTable = BucketArena().table("", 1)
    limiter = RateLimiter(RateLimitOptions(per_minute=0.01, burst=1, exempt=[], max_clients=1),
                          lambda: now[0], table)
    assert table.capacity == 1
    assert limiter.take("a").allowed and not limiter.take("a").allowed
    now[0] += 1
    assert limiter.take("b").allowed  # "a" forgotten
    assert limiter.take("a").allowed  # afresh; "b" forgotten in its turn
    wide = BucketArena().table("", 1000)
    assert wide.capacity == 2000 and wide.ways == WAYS
    keys = RateLimiter(LIMIT, lambda: now[0], wide)
    for n in range(1000):
        keys.take(f"client-{n}")
    # max_clients at once: a few sets fill early (the keys are drawn), most clients stay
    assert 920 <= wide.count() <= 1000


def test_without_memfd_an_unlinked_file_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel has no memfd (a developer's macOS, a sandbox forbidding it), an
    unlinked temporary file shares the buckets with forked processes all the same."""
    monkeypatch.delattr(os, "memfd_create")
    arena = BucketArena(shared=True)
    assert os.readlink(f"/proc/self/fd/{arena.fd}").endswith("(deleted)")

    def tries(out: int) -> None:
        limiter = RateLimiter(LIMIT, buckets=arena.table("source:web", LIMIT.max_clients))
        os.write(out, str(sum(limiter.check(CLIENT).allowed for _ in range(LIMIT.burst)))
                 .encode())

    with child(tries) as (a, fa), child(tries) as (b, fb):
        allowed = int(read_all(fa)) + int(read_all(fb))
        assert [exit_status(pid) for pid in (a, b)] == [0, 0]
    assert allowed == LIMIT.burst
