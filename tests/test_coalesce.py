"""Plain inserts held and sent one statement per kind (gateway/store/coalesce.py); the
batches that use it are tested on PostgreSQL in tests/test_store_round_trips.py and
tests/test_batch_reads_ahead.py."""

from __future__ import annotations

import pytest

from gateway.store import coalesce
from gateway.store.coalesce import HeldInserts, plain_insert


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
