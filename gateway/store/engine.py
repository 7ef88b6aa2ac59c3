"""Group commit: one writer thread runs many callers' work in one transaction.

Callers hand a function of a ``Tx`` to ``Database.write``; the writer thread drains
whatever is queued (up to ``batch_max``), runs each function inside its own savepoint
in one transaction, commits once (one fsync for the whole batch) and only then resolves
the callers' futures. A function that raises is rolled back to its savepoint alone.
Reads run on a separate thread with their own connection. Nothing blocks the event loop.

On a server that statements are sent ahead to (PostgreSQL's pipeline mode), knowing
which function's statement failed costs a wait for the server per function. So a batch
is first run whole, without savepoints, waiting only where a function reads; in the
rare batch where anything fails, it is rolled back and run again function by function
as above, each in its savepoint with a wait of its own.

A function's reads still cost a wait each time it reads. A caller that knows them
beforehand says so (``ReadAhead``): the batch's run whole then starts by taking every
such unit's key locks in one statement and sending all their reads, gathered into one
statement per text of read (gateway/store/coalesce.py), which come back in one wait,
instead of a wait per unit. A unit's reads sent before the units ahead of it wrote are
only as good as what those wrote, so: the units that said nothing of their
reads (the forwarder's claims, the phone flow, the status API) run first — the units of a
batch come from callers that did not wait for each other, so any order is one they
could have arrived in — and a unit whose keys an earlier unit of the batch shares, or
that comes after a unit that changed rows under keys not its own, reads when its turn
comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.model.errors import GatewayError
from gateway.store.coalesce import GatheredReads, HeldInserts, Rows
from gateway.store.dialect import Dialect, lock_id
from gateway.store.group_write_lock import GroupWriteLock
from gateway.store.numbers import ID_TABLES, NumberBlocks
from gateway.support.logging import get_logger

T = TypeVar("T")
log = get_logger("gateway.store")
CONFLICT_RETRIES = 5  # a batch another replica's transaction deadlocked with: run again
# The SQLite writer's connection, on top of the dialect's (WAL, synchronous=FULL):
# - checkpoint every ~32 MB of WAL rather than every 4 MB: the index pages that every
#   batch dirties again are copied into the database once per checkpoint, not per batch;
# - a 64 MB page cache (default 2 MB): the indexes every intake touches (the dedup band
#   keys above all) stay in memory, and a batch's dirty pages are not spilled into the
#   WAL before its commit only to be written again at the commit (a third of the bytes
#   written per request, measured with bench/ingest.py);
# - temporary b-trees (the GROUP BY of the band lookup) in memory.
# Durability is the WAL's (synchronous=FULL) either way.
SQLITE_WRITER_PRAGMAS = (
    "PRAGMA wal_autocheckpoint=8192",
    "PRAGMA cache_size=-65536",
    "PRAGMA temp_store=MEMORY",
)


@dataclass(frozen=True)
class ReadAhead:
    """What a unit of a batch reads, said before the batch runs (see the module docstring).

    ``locks``: the key locks it takes before reading (``Tx.lock_keys``). ``keys``: what
    its reads depend on — the rows they return are those filed under these keys, and the
    unit writes only under them — so a later unit sharing none of them reads the same
    whether the earlier one ran first or not. ``send``: sends the reads
    (``Tx.read_ahead``)."""

    locks: tuple[str, ...]
    keys: frozenset[str]
    send: Callable[[Tx], None]


class StoreUnavailable(GatewayError):
    """The database could not be reached or the commit failed; nothing was acknowledged."""


class Tx:
    """A connection inside a transaction, speaking the dialect's SQL.

    Besides the connection it carries what belongs to the one transaction: the key locks
    taken (``lock_keys``), the feed positions handed out (gateway/store/cases.py) and,
    with several writers, the writer's blocks of case-code numbers (``numbers``)."""

    def __init__(self, conn: Any, dialect: Dialect, numbers: NumberBlocks | None = None,
                 hold_inserts: bool = False) -> None:
        self.conn = conn
        self.dialect = dialect
        self.numbers = numbers
        self.intake_locked = False
        self.locked: frozenset[int] = frozenset()
        self.feed_base: int | None = None  # see cases.feed_position
        self.feed_ordinal = 0
        self._ahead: dict[tuple[str, tuple[Any, ...]], Rows] = {}  # the running unit's
        self._sent: dict[int, dict[tuple[str, tuple[Any, ...]], Rows]] = {}  # by unit
        self._sending: dict[tuple[str, tuple[Any, ...]], Rows] | None = None
        self._gathered: GatheredReads | None = None  # see ``gathering_reads``
        # Plain inserts gathered into one statement per kind (gateway/store/coalesce.py).
        self._held = HeldInserts() if hold_inserts else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self._held is not None and self._held.hold(sql, params):
            return
        self.send_held()
        self.conn.execute(self.dialect.translate(sql), params)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.send_held()
        return self.conn.execute(self.dialect.translate(sql), params).fetchone()

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._ahead:
            rows = self._ahead.pop((sql, tuple(params)), None)
            if rows is not None:
                return rows()
        self.send_held()
        return list(self.conn.execute(self.dialect.translate(sql), params).fetchall())

    def send_held(self) -> None:
        """Send the inserts held so far, one statement per kind: before any other
        statement, and before the commit."""
        held = self._held
        if held:
            for sql, params in held.drain():
                self.dialect.send_wide(self.conn, sql, params)

    def read_ahead(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Send a read now (for a later unit inside ``gathering_reads``: when that ends,
        with the other units' reads of its text), whose rows the unit's ``fetchall`` of
        the same statement and parameters takes later: on a server statements are sent
        ahead to, reads sent together come back in one wait. Only inside
        ``reading_ahead`` or, for a later unit, ``sending_ahead``; nothing on SQLite (a
        read there costs no wait)."""
        if self.dialect.sends_ahead:
            into = self._ahead if self._sending is None else self._sending
            key = (sql, tuple(params))
            if key in into:
                return
            if self._gathered is not None and self._sending is not None:
                into[key] = self._gathered.add(sql, params)
                return
            cursor = self._send_read(sql, params)
            into[key] = functools.cache(lambda: list(cursor.fetchall()))

    def _send_read(self, sql: str, params: Sequence[Any]) -> Any:
        self.send_held()
        return self.conn.execute(self.dialect.translate(sql), params)

    @contextlib.contextmanager
    def gathering_reads(self) -> Iterator[None]:
        """The reads sent for later units inside (``sending_ahead``) are gathered and
        sent when it ends, one statement per text (gateway/store/coalesce.py)."""
        self._gathered = gathered = GatheredReads()
        try:
            yield
        finally:
            self._gathered = None
        self.send_held()
        gathered.send(self._send_read, lambda sql, params: self.dialect.send_wide(
            self.conn, sql, params, prepare=True))

    @contextlib.contextmanager
    def sending_ahead(self, unit: int) -> Iterator[None]:
        """Reads sent now belong to the batch's unit number ``unit``, which takes them
        when its turn comes (``start_unit``)."""
        self._sending = self._sent.setdefault(unit, {})
        try:
            yield
        finally:
            self._sending = None

    def start_unit(self, unit: int) -> None:
        """Unit number ``unit`` runs now: the reads sent ahead for it are its own, and
        what the unit before it sent and did not take is dropped (rows read before that
        unit wrote)."""
        self._ahead = self._sent.pop(unit, {})

    def drop_reads_ahead(self, holding: Any = None) -> None:
        """The running unit changed rows filed under keys other than its own: the later
        units' reads sent ahead may have returned those rows as they were, so they are
        dropped and read again when their unit's turn comes.

        ``holding``: the unit only updated rows that hold this value (a case's id: it
        put an earlier case in a cluster) and no row entered or left any read's result,
        so only the reads whose rows hold it are dropped (in any column: a read of
        another shape holding the same number is only read again). The others' rows have
        come back already, in the batch's one wait; dropping every read would make each
        later unit wait for its own, a wait per unit in a batch where a cluster opened."""
        if holding is None:
            self._sent.clear()
            return
        for reads in self._sent.values():
            stale = [key for key, rows in reads.items()
                     if any(holding in row for row in rows())]
            for key in stale:
                del reads[key]

    @contextlib.contextmanager
    def reading_ahead(self) -> Iterator[None]:
        """A unit's reads sent ahead are its own: what it did not take is dropped when it
        ends, so a later unit never takes rows read before its predecessors wrote."""
        try:
            yield
        finally:
            self._ahead.clear()

    def insert_row(self, table: str, columns: Sequence[str], values: Sequence[Any]) -> int:
        """Insert one row; its id. With several writers the id is taken from the writer's
        block (gateway/store/numbers.py), so the insert is sent without waiting for an
        answer; else the table hands it out (``RETURNING id``, no wait in-process)."""
        marks = ", ".join("?" for _ in values)
        if self.numbers is not None and table in ID_TABLES:
            row_id = self.numbers.take_id(table)
            self.execute(f"INSERT INTO {table} (id, {', '.join(columns)}) VALUES (?, {marks})",
                         (row_id, *values))
            return row_id
        row = self.fetchone(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
                            "RETURNING id", values)
        return int(row[0])

    def lock_intake(self) -> None:
        """Serialise with every other replica until this transaction ends (the schema
        migration). The intake does not take it: it locks only its keys (``lock_keys``)."""
        if not self.intake_locked:
            sql = self.dialect.intake_lock_sql()
            if sql:
                self.execute(sql)
            self.intake_locked = True

    def lock_keys(self, names: Iterable[str]) -> None:
        """Serialise the work on these keys (a replay key, a reporter, a call) with other
        replicas until this transaction ends; work on other keys does not wait. One
        statement, ids in ascending order; on SQLite nothing (one writer)."""
        ids = sorted({lock_id(name) for name in names} - self.locked)
        if not ids:
            return
        sql = self.dialect.key_locks_sql(len(ids))
        if sql:
            self.execute(sql, ids)
        self.locked = self.locked | set(ids)

    def locks(self) -> tuple[bool, frozenset[int]]:
        return self.intake_locked, self.locked

    def forget_locks(self, before: tuple[bool, frozenset[int]]) -> None:
        """A savepoint was rolled back: PostgreSQL released the locks taken inside it."""
        self.intake_locked, self.locked = before


@dataclass
class _Job:
    fn: Callable[[Tx], Any]
    future: asyncio.Future[Any]
    ahead: ReadAhead | None = None


class Database:
    """One engine, a writer thread with group commit and a reader thread."""

    def __init__(self, dialect: Dialect, batch_max: int = 512,
                 group_lock: GroupWriteLock | None = None) -> None:
        """``group_lock``: the SQLite writers of a worker group take turns by it
        (gateway/store/group_write_lock.py); one process needs none."""
        self.dialect = dialect
        self.batch_max = batch_max
        self.group_lock = group_lock
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="store-read")
        self._local = threading.local()
        self._reader_conns: list[Any] = []
        self._reader_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.numbers: NumberBlocks | None = None
        if not dialect.numbers_in_transaction:
            self.numbers = NumberBlocks(dialect.connect, dialect.translate)
        self.batches = 0
        self.retries = 0
        self.reruns = 0  # batches run again unit by unit after a unit failed
        self.units = 0

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = threading.Thread(target=self._write_loop, name="store-write", daemon=True)
        self._writer.start()

    @property
    def writer_thread_id(self) -> int | None:
        """The writer thread's native id while it runs (its CPU in /metrics)."""
        return self._writer.native_id if self._writer is not None else None

    async def close(self) -> None:
        """Finish everything queued, then stop the threads."""
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                _close_quietly(conn)
            self._reader_conns.clear()

    # -- API -------------------------------------------------------------------------

    async def write(self, fn: Callable[[Tx], T], ahead: ReadAhead | None = None) -> T:
        """Run ``fn`` in the next group-committed transaction; return once it is durable.
        ``ahead``: the reads ``fn`` will make, sent with the batch's others (PostgreSQL)."""
        if self._writer is None or self._loop is None:
            raise StoreUnavailable("store is not started")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Job(fn, future, ahead if self.dialect.sends_ahead else None))
        return await future

    async def read(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` on the reader connection (sees committed data only)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    # -- threads ---------------------------------------------------------------------

    def _run_read(self, fn: Callable[[Tx], T]) -> T:
        conn = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = self._local.conn = self.dialect.connect()
                with self._reader_lock:
                    self._reader_conns.append(conn)
            return fn(Tx(conn, self.dialect))
        except Exception as exc:
            if self.dialect.is_disconnect(exc):
                _close_quietly(conn)
                self._local.conn = None
                raise StoreUnavailable(f"store read failed: {exc}") from exc
            raise

    def _write_loop(self) -> None:
        conn: Any = None
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs = [first]
            while len(jobs) < self.batch_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                jobs.append(nxt)
            conn, outcomes = self._run_with_retries(conn, jobs)
            self._resolve(jobs, outcomes)
        _close_quietly(conn)
        if self.numbers is not None:
            self.numbers.close()

    def _run_with_retries(
        self, conn: Any, jobs: list[_Job]
    ) -> tuple[Any, list[tuple[Any, BaseException | None]]]:
        """Run the batch; again when another replica's transaction deadlocked with it (the
        server rolled this one back whole, so running every unit again is safe)."""
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                if conn is None:
                    conn = self._connect_writer()
                return conn, self._run_batch(conn, jobs)
            except Exception as exc:  # the whole transaction failed: nobody is acknowledged
                if self.dialect.is_conflict(exc) and attempt < CONFLICT_RETRIES:
                    self.retries += 1
                    log.warning("store_batch_conflict", error=str(exc), jobs=len(jobs),
                                attempt=attempt + 1)
                    continue
                log.error("store_batch_failed", error=str(exc), jobs=len(jobs))
                _close_quietly(conn)
                failure = StoreUnavailable(f"store write failed: {exc}")
                return None, [(None, failure) for _ in jobs]
        raise AssertionError("unreachable")

    def _connect_writer(self) -> Any:
        conn = self.dialect.connect()
        if self.dialect.name == "sqlite":
            for pragma in SQLITE_WRITER_PRAGMAS:
                conn.execute(pragma)
        return conn

    def _run_batch(self, conn: Any, jobs: list[_Job]) -> list[tuple[Any, BaseException | None]]:
        if self.dialect.sends_ahead and len(jobs) > 1:
            try:
                return self._run_units(conn, jobs, savepoints=False)
            except Exception as exc:
                if self.dialect.is_disconnect(exc) or self.dialect.is_conflict(exc):
                    raise
                self.reruns += 1  # rolled back, which unit failed unknown: each again
        return self._run_units(conn, jobs, savepoints=True)

    def _run_units(self, conn: Any, jobs: list[_Job], savepoints: bool
                   ) -> list[tuple[Any, BaseException | None]]:
        """The batch in one transaction, committed once. With ``savepoints`` a unit that
        fails is rolled back alone (a wait for the server per unit, to learn its errors);
        without, any failure rolls back the whole batch and raises."""
        # Run whole on a server (errors known only at the commit anyway), inserts are
        # held and sent one statement per kind.
        tx = Tx(conn, self.dialect, self.numbers,
                hold_inserts=not savepoints and self.dialect.sends_ahead)
        try:
            with self._turn(), self.dialect.pipeline(conn) as sync:
                conn.execute(self.dialect.begin)
                outcomes = ([self._unit_in_savepoint(conn, tx, job, sync) for job in jobs]
                            if savepoints else _run_reading_ahead(tx, jobs))
                tx.send_held()
                conn.execute("COMMIT")
            # Leaving the pipeline waits for the commit (and raises if it failed), before
            # anybody is answered.
        except BaseException:
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise
        self.batches += 1
        self.units += len(jobs)
        return outcomes

    def _turn(self) -> contextlib.AbstractContextManager[None]:
        """This worker's turn at the SQLite write lock, in a group; else nothing."""
        return self.group_lock.held() if self.group_lock else contextlib.nullcontext()

    def _unit_in_savepoint(self, conn: Any, tx: Tx, job: _Job, sync: Callable[[], None]
                           ) -> tuple[Any, BaseException | None]:
        conn.execute("SAVEPOINT unit")
        tx.start_unit(-1)  # nothing was sent ahead for it
        locked_before = tx.locks()
        try:
            result = job.fn(tx)
            sync()  # a statement of this unit that failed raises here, not later
        except Exception as exc:
            if self.dialect.is_disconnect(exc) or self.dialect.is_conflict(exc):
                raise  # a conflict: the whole batch is run again
            conn.execute("ROLLBACK TO SAVEPOINT unit")
            # PostgreSQL releases an advisory lock taken inside the rolled-back
            # savepoint: forget it, so the next unit takes it again.
            tx.forget_locks(locked_before)
            conn.execute("RELEASE SAVEPOINT unit")
            return None, exc
        conn.execute("RELEASE SAVEPOINT unit")
        return result, None

    def _resolve(self, jobs: list[_Job], outcomes: list[tuple[Any, BaseException | None]]) -> None:
        def resolve_all() -> None:
            for job, (result, exc) in zip(jobs, outcomes, strict=True):
                if job.future.done():
                    continue
                if exc is not None:
                    job.future.set_exception(exc)
                else:
                    job.future.set_result(result)

        assert self._loop is not None
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(resolve_all)


def _run_reading_ahead(tx: Tx, jobs: Sequence[_Job]) -> list[tuple[Any, BaseException | None]]:
    """Run the units of a batch, those that said what they read last, their reads sent
    together first (see the module docstring); the outcomes in the order of ``jobs``."""
    outcomes: dict[int, tuple[Any, BaseException | None]] = {}
    silent = [number for number, job in enumerate(jobs) if job.ahead is None]
    saying = [(number, job.ahead) for number, job in enumerate(jobs) if job.ahead is not None]
    for number in silent:
        outcomes[number] = _run_unit(tx, number, jobs[number])
    _send_ahead(tx, saying)
    for number, _ in saying:
        outcomes[number] = _run_unit(tx, number, jobs[number])
    return [outcomes[number] for number in range(len(jobs))]


def _send_ahead(tx: Tx, units: Sequence[tuple[int, ReadAhead]]) -> None:
    """Take the key locks of the units whose reads can go ahead, in one statement, and
    send their reads: not those of a unit whose keys an earlier unit shares."""
    sending: list[tuple[int, ReadAhead]] = []
    claimed: set[str] = set()
    for number, ahead in units:
        if not ahead.keys & claimed:
            sending.append((number, ahead))
        claimed |= ahead.keys
    if len(sending) < 2:
        return  # a unit alone sends its reads together itself
    tx.lock_keys([name for _, ahead in sending for name in ahead.locks])
    with tx.gathering_reads():
        for number, ahead in sending:
            with tx.sending_ahead(number):
                ahead.send(tx)


def _run_unit(tx: Tx, number: int, job: _Job) -> tuple[Any, None]:
    tx.start_unit(number)
    return job.fn(tx), None


def _close_quietly(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()
