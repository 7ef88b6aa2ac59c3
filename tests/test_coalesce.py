"""Plain inserts held, and reads sent ahead gathered, one statement per kind
(gateway/store/coalesce.py); the batches that use them are tested on PostgreSQL in
tests/test_store_round_trips.py and tests/test_batch_reads_ahead.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.store import coalesce
from gateway.store.coalesce import GatheredReads, HeldInserts, plain_insert
from gateway.store.dialect import dialect_for, numbered
from gateway.store.engine import Tx
from tests.pg import create_database


@pytest.mark.parametrize("sql", [
    "INSERT INTO cases (id, case_code) VALUES (?, ?)",
    "INSERT INTO dedup_bands (band_key, case_id) VALUES (?, ?), (?, ?)",
    "INSERT INTO sequences (scope, value) VALUES (?, 1)",
    "INSERT INTO outbox (sink, state) VALUES (?, 'pending')",
    "INSERT INTO dedup_keys (scope, key) VALUES (?, ?) ON CONFLICT (scope, key) DO NOTHING",
    "  INSERT INTO t (a)\n VALUES (?)  ",
])
def test_plain_inserts_are_held(sql: str) -> None:
    assert plain_insert(sql) is not None
    assert HeldInserts().hold(sql, (1,))


@pytest.mark.parametrize("sql", [
    "INSERT INTO cases (id) VALUES (?) RETURNING id",
    "INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO UPDATE SET a = excluded.a",
    "INSERT INTO t (a) SELECT a FROM u",
    "INSERT INTO t (a) VALUES ((SELECT max(a) FROM u))",
    "INSERT INTO t (a) VALUES (?); DELETE FROM t",
    "UPDATE t SET a = ?",
    "DELETE FROM t WHERE a = ?",
    "SELECT a FROM t WHERE a IN (?, ?)",
])
def test_other_statements_are_not(sql: str) -> None:
    assert plain_insert(sql) is None
    held = HeldInserts()
    assert not held.hold(sql, (1,))
    assert not held


def test_one_statement_per_kind_in_the_order_first_held_rows_in_order() -> None:
    held = HeldInserts()
    a = "INSERT INTO a (x, y) VALUES (?, ?)"
    b = "INSERT INTO b (k) VALUES (?) ON CONFLICT (k) DO NOTHING"
    for n in range(3):
        held.hold(a, (n, f"y{n}"))
        held.hold(b, (n,))
    held.hold("INSERT INTO c (z) VALUES (?)", (9,))
    assert list(held.drain()) == [
        ("INSERT INTO a (x, y) VALUES (?, ?), (?, ?), (?, ?)", [0, "y0", 1, "y1", 2, "y2"]),
        ("INSERT INTO b (k) VALUES (?), (?), (?) ON CONFLICT (k) DO NOTHING", [0, 1, 2]),
        ("INSERT INTO c (z) VALUES (?)", [9]),
    ]
    assert not held  # drained
    assert list(held.drain()) == []


def test_many_rows_are_split_under_the_parameter_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coalesce, "MAX_PARAMS", 6)
    held = HeldInserts()
    sql = "INSERT INTO a (x, y) VALUES (?, ?)"
    for n in range(7):
        held.hold(sql, (n, n))
    statements = list(held.drain())
    assert [s.count("(?, ?)") for s, _ in statements] == [3, 3, 1]
    assert [p for _, params in statements for p in params] == [n for n in range(7) for _ in "xy"]


def test_placeholders_numbered_in_order_literals_kept() -> None:
    sql = "INSERT INTO outbox (sink, state, n) VALUES (?, 'pending', ?), (?, 'pending', -1)"
    assert numbered(sql) == ("INSERT INTO outbox (sink, state, n) "
                             "VALUES ($1, 'pending', $2), ($3, 'pending', -1)")
    assert numbered("INSERT INTO t (a) VALUES (1)") == "INSERT INTO t (a) VALUES (1)"


def test_held_rows_of_every_type_stored_as_sent_on_postgresql(pg_admin_url: str) -> None:
    """A held insert goes to PostgreSQL through a raw cursor with numbered placeholders
    (``PostgresDialect.send_wide``): more than psycopg's 50 cached parameters, NULLs,
    bytes, text with ``?`` and ``$1`` in it, times; the rows come back as sent, in order,
    and a duplicate key under ``DO NOTHING`` keeps the first row."""
    url = create_database(pg_admin_url, "coalesce_raw")
    dialect = dialect_for(url)
    conn = dialect.connect()
    try:
        conn.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT, blob BYTEA, "
                     "at TIMESTAMPTZ, score DOUBLE PRECISION, state TEXT)")
        at = datetime(2026, 12, 5, 8, 30, tzinfo=UTC)
        rows = [(n, f"是否? ${n} %s {n}" if n % 3 else None, bytes([n % 256]) * n, at,
                 n / 4, ) for n in range(40)]
        held = HeldInserts()
        sql = ("INSERT INTO t (id, body, blob, at, score, state) VALUES (?, ?, ?, ?, ?, 'new') "
               "ON CONFLICT (id) DO NOTHING")
        for row in rows:
            held.hold(sql, row)
        held.hold(sql, (0, "a later duplicate", b"", at, 0.0))
        statements = list(held.drain())
        assert len(statements) == 1 and len(statements[0][1]) == 41 * 5
        conn.execute("BEGIN")
        for statement, params in statements:
            dialect.send_wide(conn, statement, params)
        conn.execute("COMMIT")
        stored = conn.execute("SELECT id, body, blob, at, score, state FROM t ORDER BY id"
                              ).fetchall()
    finally:
        conn.close()
    assert [tuple(r) for r in stored] == [(*row[:2], bytes(row[2]), *row[3:], "new")
                                         for row in rows]


def test_reads_gathered_one_statement_per_text_of_two_four_or_eight() -> None:
    """Reads of one text go as one statement of 2, 4 or 8 reads (the last read repeated
    to fill it), at most 8 a statement; a read of a text alone goes as it is; each
    read's rows are those tagged with its position, in the order they came."""
    sent: list[tuple[str, str, list[Any]]] = []

    def one(sql: str, params: Sequence[Any]) -> Any:
        sent.append(("one", sql, list(params)))
        return FakeCursor([(params[0], "a"), (params[0], "b")])

    def wide(sql: str, params: Sequence[Any]) -> Any:
        sent.append(("wide", sql, list(params)))
        # Rows of every position but 1, two each, interleaved: a read's rows in order.
        count = sql.count(" UNION ALL ") + 1
        rows = [(n, params[n], tag) for tag in ("a", "b") for n in range(count) if n != 1]
        return FakeCursor(rows)

    gathered = GatheredReads()
    a, b = "SELECT x, y FROM t WHERE x = ?", "SELECT x, z FROM u WHERE x = ?"
    reads_a = [gathered.add(a, (n,)) for n in range(11)]
    read_b = gathered.add(b, ("alone",))
    gathered.send(one, wide)
    assert [(how, sql.count("gathered_position"), params) for how, sql, params in sent] == [
        ("wide", 8, list(range(8))),
        ("wide", 4, [8, 9, 10, 10]),  # three reads: padded to four
        ("one", 0, ["alone"]),
    ]
    assert sent[0][1] == coalesce.reads_statement(a, 8)
    assert read_b() == [("alone", "a"), ("alone", "b")]
    assert reads_a[0]() == [(0, "a"), (0, "b")]
    assert reads_a[1]() == reads_a[9]() == []  # position 1: no rows for it
    assert [reads_a[n]() for n in (2, 7, 8, 10)] == [
        [(n, "a"), (n, "b")] for n in (2, 7, 8, 10)]


class FakeCursor:
    """Rows of a statement sent, as a cursor hands them (psycopg's is tested below)."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8])
def test_padded_count(count: int) -> None:
    assert coalesce.padded_count(count) == {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 8: 8}[count]


def test_gathered_reads_return_each_reads_rows_in_order_on_postgresql(
        pg_admin_url: str) -> None:
    """Units' reads sent ahead together (``Tx.gathering_reads``) come back to each unit as
    the same statement alone returns them, in the same order: ``ORDER BY … LIMIT``, a
    ``UNION ALL`` of its own with literal columns, two columns of one name, no rows,
    and more reads of a text than one statement carries."""
    url = create_database(pg_admin_url, "coalesce_reads")
    dialect = dialect_for(url)
    conn = dialect.connect()
    reads: list[tuple[str, list[tuple[Any, ...]]]] = [
        ("SELECT k, v FROM t WHERE k IN (?, ?) ORDER BY v DESC, k LIMIT ?",
         [(n % 7, (n + 3) % 7, 1 + n % 4) for n in range(19)]),
        ("SELECT t.k, u.k, u.note FROM t JOIN u ON u.k = t.k WHERE t.v >= ? "
         "UNION ALL SELECT k, 0, '' FROM u WHERE note = ?", [(n * 5, f"n{n}") for n in range(3)]),
        ("SELECT v FROM t WHERE k = ?", [(100,)]),
    ]
    try:
        conn.execute("CREATE TABLE t (k BIGINT, v DOUBLE PRECISION)")
        conn.execute("CREATE TABLE u (k BIGINT, note TEXT)")
        for n in range(60):
            conn.execute("INSERT INTO t (k, v) VALUES (%s, %s)", (n % 7, float(n % 11)))
        for n in range(7):
            conn.execute("INSERT INTO u (k, note) VALUES (%s, %s)", (n, f"n{n}"))
        conn.commit()
        alone = [[list(conn.execute(dialect.translate(sql), params).fetchall())
                  for params in many] for sql, many in reads]
        conn.rollback()
        tx = Tx(conn, dialect)
        units = [(sql, params) for sql, many in reads for params in many]
        with dialect.pipeline(conn):
            with tx.gathering_reads():
                for number, (sql, params) in enumerate(units):
                    with tx.sending_ahead(number):
                        tx.read_ahead(sql, params)
            together = []
            for number, (sql, params) in enumerate(units):
                tx.start_unit(number)
                together.append(tx.fetchall(sql, params))
        conn.rollback()
    finally:
        conn.close()
    assert together == [rows for per_text in alone for rows in per_text]
    assert any(not rows for rows in together) and any(len(rows) > 2 for rows in together)
