"""Rate-limit buckets every worker of a group shares, so a limit holds for the machine.

Why: with ``server.workers: N`` a client's connections land on whichever worker accepts
them. Buckets in each worker's own memory let a client through at up to N times the
configured rate, and each look-up limit had to be cut to 1/N of itself (which also
refused a citizen whose few tries all reached one worker).

How: the buckets live in one memfd (shared memory with no file on disk, gone when the
last process holding it exits; ``gateway.support.shared_file``), made by the group's
parent before it forks; every worker inherits it. Its first page holds the key of the
slot digests and a directory of regions. Each limiter claims a region by name
(``source:web``, ``lookup:client``) the first time a worker builds it; the others find
it there and map the same pages.

A region is a set-associative table: the keyed 64-bit digest of a bucket's key (a
client address, a case code) picks a set of up to ``WAYS`` slots, kept in the order
their keys were last seen; a new key pushes out the one seen longest ago, which only
ever lets a forgotten client start afresh (as ``max_clients`` always promised). A region
has room for twice the limiter's ``max_clients``: a key's set is a draw, and a set of a
half-full table is seldom full.

A bucket is read, updated and written back holding a POSIX record lock
(``fcntl.lockf``) on its set's bytes alone: workers wait for each other only on the
same set, and the kernel releases the lock of a worker that dies holding it (a
semaphore would stay taken and stall every worker).

A single gateway process has its own arena, unshared: no lock is taken, and a bucket
costs no system call. Every call comes from the event loop's thread (POSIX record locks
are per process and would not keep two threads of one process apart).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from gateway.support.shared_file import shared_file

WAYS = 4  # slots per set: a key competes for its place with three others at most
SLOT = struct.Struct("<QddQ")  # key digest (0: empty), tokens, last seen, refusing
FIELDS = len(SLOT.format) - 1
HEADER = struct.Struct("<8s16sI")  # magic, digest key, regions claimed
ENTRY = struct.Struct("<QQQQ")  # name digest, offset, sets, ways
MAGIC = b"mgbkt001"
PAGE = mmap.PAGESIZE
MAX_REGIONS = (PAGE - HEADER.size) // ENTRY.size


@dataclass
class Bucket:
    """One client's tokens; ``at``: when it was last seen (the limiter's clock)."""

    tokens: float
    at: float
    refusing: bool = False  # refused since its last accepted submission


Step = Callable[[Bucket | None], Bucket]  # the bucket as found (None: new) → as kept


def region_bytes(sets: int, ways: int) -> int:
    """A table's size in the arena: whole pages, so the next region can be mapped."""
    return -(-sets * ways * SLOT.size // PAGE) * PAGE


class BucketArena:
    """The shared memory of one process, or of a whole worker group (``shared``)."""

    def __init__(self, *, shared: bool = False) -> None:
        self.shared = shared
        self.fd = shared_file("minsheng-rate-limits", self)  # a table's pages hold a copy
        os.ftruncate(self.fd, PAGE)
        os.pwrite(self.fd, HEADER.pack(MAGIC, os.urandom(16), 0), 0)

    def table(self, name: str, capacity: int) -> BucketTable:
        """The region named ``name``, of at least ``capacity`` slots: claimed now by the
        first process that asks, found by the others."""
        ways = min(WAYS, capacity)
        # Room for twice the capacity, so that a set seldom fills before the table does
        # (a key's set is a draw); a capacity of one set is kept exactly.
        sets = 1 if capacity <= WAYS else -(-2 * capacity // WAYS)
        wanted = hashlib.blake2b(name.encode(), digest_size=8).digest()
        name_digest = int.from_bytes(wanted, "little")
        self.lock(0, PAGE, fcntl.LOCK_EX)
        try:
            magic, key, count = HEADER.unpack(os.pread(self.fd, HEADER.size, 0))
            if magic != MAGIC:
                raise RuntimeError("rate-limit memory is not what this version wrote")
            for index in range(count):
                at = HEADER.size + index * ENTRY.size
                found, its_offset, its_sets, its_ways = ENTRY.unpack(
                    os.pread(self.fd, ENTRY.size, at))
                if found == name_digest:
                    return BucketTable(self, key, its_offset, its_sets, its_ways)
            if count >= MAX_REGIONS:
                raise RuntimeError(f"more than {MAX_REGIONS} rate limits in one gateway")
            offset = os.fstat(self.fd).st_size  # always whole pages
            # new pages read as zeros: empty slots
            os.ftruncate(self.fd, offset + region_bytes(sets, ways))
            os.pwrite(self.fd, ENTRY.pack(name_digest, offset, sets, ways),
                      HEADER.size + count * ENTRY.size)
            os.pwrite(self.fd, HEADER.pack(magic, key, count + 1), 0)
        finally:
            self.lock(0, PAGE, fcntl.LOCK_UN)
        return BucketTable(self, key, offset, sets, ways)

    def lock(self, start: int, length: int, how: int) -> None:
        """Take (``fcntl.LOCK_EX``) or give back (``LOCK_UN``) these bytes, in a shared
        arena; one process's own arena has no one to wait for."""
        if self.shared:
            fcntl.lockf(self.fd, how, length, start, os.SEEK_SET)


class BucketTable:
    """One limiter's buckets in an arena."""

    def __init__(self, arena: BucketArena, key: bytes, offset: int, sets: int,
                 ways: int) -> None:
        self.arena = arena
        self.key = key
        self.offset = offset
        self.sets = sets
        self.ways = ways
        self.set_bytes = ways * SLOT.size
        self.slots = struct.Struct("<" + SLOT.format.lstrip("<") * ways)  # a set at once
        self.pages = mmap.mmap(arena.fd, region_bytes(sets, ways), offset=offset)
        # The same few clients come again and again: their digests are kept (~0.7 µs each).
        self.digest = functools.lru_cache(maxsize=4096)(self._digest)

    def _digest(self, key: str) -> int:
        found = hashlib.blake2b(key.encode(), digest_size=8, key=self.key).digest()
        return int.from_bytes(found, "little") or 1  # 0 marks an empty slot

    @property
    def capacity(self) -> int:
        return self.sets * self.ways

    def update(self, key: str, step: Step) -> tuple[Bucket | None, Bucket]:
        """``step`` applied to the bucket of ``key`` and kept; no other process touches
        that bucket in between. Returns the bucket as found (None: new) and as kept."""
        digest = self.digest(key)
        start = (digest % self.sets) * self.set_bytes
        self.arena.lock(self.offset + start, self.set_bytes, fcntl.LOCK_EX)
        try:
            # A set's slots: keys seen longest ago first, empty slots last.
            values = self.slots.unpack_from(self.pages, start)
            digests = values[::FIELDS]
            found = None
            if digest in digests:  # out of its place: it goes last
                at = digests.index(digest) * FIELDS
                found = Bucket(values[at + 1], values[at + 2], bool(values[at + 3]))
                others = values[:at] + values[at + FIELDS:]
            elif digests[-1]:  # full: the key seen longest ago falls out
                others = values[FIELDS:]
            else:  # an empty slot fewer
                others = values[:-FIELDS]
            bucket = step(found)
            used = FIELDS * sum(1 for d in others[::FIELDS] if d)
            self.slots.pack_into(self.pages, start, *others[:used], digest, bucket.tokens,
                                 bucket.at, int(bucket.refusing), *others[used:])
        finally:
            self.arena.lock(self.offset + start, self.set_bytes, fcntl.LOCK_UN)
        return found, bucket

    def count(self) -> int:
        """Buckets held now (for tests and the curious; it reads every slot)."""
        return sum(1 for (digest, *_rest) in SLOT.iter_unpack(self.pages) if digest)
