"""The dedup candidate query keeps its plan on PostgreSQL whatever the statistics.

A new store's tables have not been analyzed (autovacuum comes after a minute or so), and
without statistics PostgreSQL guesses that each of the 20 band keys matches 0.5 % of the
band rows. With a plain join it then hashed every entry of the window for each
submission: 2-6 ms a statement on a bench run's store, growing with the window.
``by_bands_query`` looks each counted case's entry up by its key behind a ``LATERAL …
OFFSET 0`` instead (gateway/store/dedup_index.py)."""

from __future__ import annotations

from gateway.store import Store, Tx
from gateway.store import dedup_index as idx
from tests.pg import create_database

ENTRIES = 5000
BANDS_PER_ENTRY = 20


def fill(tx: Tx) -> list[int]:
    """A window of entries and their band keys, written without ANALYZE; returns the
    band keys of entry 1."""
    for table in ("dedup_entries", "dedup_bands"):  # no analyze during the test either
        tx.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    tx.execute("INSERT INTO dedup_entries (case_id, case_code, at, content_hash, kind) "
               "SELECT g, 'C' || g, g, g, 'new' FROM generate_series(1, ?) g", (ENTRIES,))
    tx.execute("INSERT INTO dedup_bands (band_key, case_id) "
               "SELECT mod(g::bigint * 2654435761, 2147483647), g / ? + 1 "
               "FROM generate_series(0, ? - 1) g",
               (BANDS_PER_ENTRY, ENTRIES * BANDS_PER_ENTRY))
    rows = tx.fetchall("SELECT band_key FROM dedup_bands WHERE case_id = 1")
    return [int(r[0]) for r in rows]


async def test_candidates_are_looked_up_by_key_before_any_statistics(
    pg_admin_url: str,
) -> None:
    store = Store.from_url(create_database(pg_admin_url, "dedup_query_plan"))
    await store.start()
    try:
        bands = await store.write(fill)
        assert len(bands) == BANDS_PER_ENTRY

        def plan_and_result(tx: Tx) -> tuple[str, list[idx.Entry]]:
            never = tx.fetchall("SELECT relname FROM pg_stat_user_tables WHERE relname IN "
                                "('dedup_entries', 'dedup_bands') AND last_analyze IS NULL "
                                "AND last_autoanalyze IS NULL")
            assert len(never) == 2  # the case this test is about
            sql, params = idx.by_bands_query(tx.dialect, bands, 0.0, 50)
            plan = "\n".join(str(r[0]) for r in tx.fetchall("EXPLAIN " + sql, params))
            return plan, idx.by_bands(tx, bands, 0.0, 50)

        plan, found = await store.read(plan_and_result)
    finally:
        await store.close()
    assert "Hash Join" not in plan, plan
    assert "Index Scan using dedup_entries_pkey" in plan, plan
    assert found[0].case_id == 1  # all 20 of its bands: the most hits come first
