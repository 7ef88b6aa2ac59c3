"""Plain inserts held and sent one statement per kind (gateway/store/coalesce.py); the
batches that use it are tested on PostgreSQL in tests/test_store_round_trips.py and
tests/test_batch_reads_ahead.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.store import coalesce
from gateway.store.coalesce import HeldInserts, plain_insert
from gateway.store.dialect import dialect_for, numbered
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
    (``PostgresDialect.send_rows``): more than psycopg's 50 cached parameters, NULLs,
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
            dialect.send_rows(conn, statement, params)
        conn.execute("COMMIT")
        stored = conn.execute("SELECT id, body, blob, at, score, state FROM t ORDER BY id"
                              ).fetchall()
    finally:
        conn.close()
    assert [tuple(r) for r in stored] == [(*row[:2], bytes(row[2]), *row[3:], "new")
                                         for row in rows]
