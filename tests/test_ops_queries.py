"""Volumes per channel for the status views (gateway/store/ops_queries.py), on both engines:
hour and local-day buckets, the window found through the ids, incremental refreshes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.model.schema import RawRecord
from gateway.store import Store, Tx, cases, journal
from gateway.store import ops_queries as q
from gateway.store.ops_queries import VolumeCache

TZ = ZoneInfo("Asia/Shanghai")
# "Now" in these tests: 2024-05-07 12:30 in Shanghai (04:30 UTC).
NOW = datetime(2024, 5, 7, 12, 30, tzinfo=TZ).timestamp()
HOUR = 3600.0


def _case(tx: Tx, n: int, channel: str, at: float) -> None:
    row = cases.insert(tx, case_code=f"CY-TEST-{n:05d}", source=channel, source_ref=f"r{n}",
                       channel=channel, raw_id=n, document="{}")
    tx.execute("UPDATE cases SET created_at = ? WHERE id = ?", (at, row.id))


def _raw(tx: Tx, n: int, channel: str, at: float, status: str) -> None:
    raw = RawRecord(channel=channel, source=channel, source_ref=f"r{n}", payload=b"{}",  # type: ignore[arg-type]
                    content_type="application/json", received_at=datetime.fromtimestamp(at, UTC))
    detail = [{"field": "content", "code": "required"}] if status == journal.REJECTED else None
    journal.insert_raw(tx, raw, status, detail)


# (minutes before NOW, channel): in time order, as the ids are.
HISTORY = [
    (8 * 24 * 60, "web"),  # before the 7-day window
    (5 * 24 * 60 + 13 * 60, "phone"),  # 2024-05-01 23:30, the first day of the window
    (5 * 24 * 60 + 11 * 60, "phone"),  # 2024-05-02 01:30
    (3 * 24 * 60, "email"),  # 2024-05-04 12:30
    (25 * 60, "web"),  # 2024-05-06 11:30: in the window, not in the last 24 hours
    (23 * 60 + 10, "web"),  # 2024-05-06 13:20: the first of the last 24 hourly buckets
    (90, "opinion"),  # 11:00 today
    (20, "web"),  # 12:10 today
    (5, "web"),  # 12:25 today
]


async def _fill(store: Store) -> None:
    def work(tx: Tx) -> None:
        for n, (minutes, channel) in enumerate(HISTORY, start=1):
            at = NOW - minutes * 60
            _case(tx, n, channel, at)
            _raw(tx, n, channel, at, journal.ACCEPTED)
        _raw(tx, 100, "web", NOW - 60, journal.REJECTED)

    await store.write(work)


async def test_window_is_found_through_the_ids(store: Store) -> None:
    assert await store.read(lambda tx: q.first_id_since(tx, "cases", 0)) is None  # empty
    await _fill(store)
    first = await store.read(lambda tx: q.first_id_since(tx, "cases", NOW - 7 * 24 * HOUR))
    ids = await store.read(lambda tx: tx.fetchall("SELECT id FROM cases ORDER BY id"))
    assert first == int(ids[1][0])
    assert await store.read(lambda tx: q.first_id_since(tx, "cases", NOW)) is None
    assert await store.read(lambda tx: q.first_id_since(tx, "cases", 0)) == int(ids[0][0])
    assert await store.read(lambda tx: q.first_id_since(tx, "raw_records", NOW - 59)) is None
    last = await store.read(lambda tx: q.first_id_since(tx, "raw_records", NOW - 61))
    assert last == await store.read(lambda tx: tx.fetchone("SELECT MAX(id) FROM raw_records")[0])


async def test_volumes_per_hour_day_and_channel(store: Store) -> None:
    await _fill(store)
    cache = VolumeCache(7, TZ)
    await store.read(lambda tx: cache.refresh(tx, NOW))
    view = cache.view(NOW)
    assert view["channels"] == ["phone", "web", "email", "opinion"]
    assert [d["date"] for d in view["days"]] == [f"2024-05-0{d}" for d in range(1, 8)]
    per_day = {d["date"]: d["cases"] for d in view["days"]}
    assert per_day["2024-05-01"] == {"phone": 1}  # 23:30 local, though 15:30 UTC
    assert per_day["2024-05-02"] == {"phone": 1}
    assert per_day["2024-05-04"] == {"email": 1}
    assert per_day["2024-05-06"] == {"web": 2}
    assert per_day["2024-05-07"] == {"opinion": 1, "web": 2}
    hours = view["hours"]
    assert len(hours) == 24 and hours[-1]["start"] == NOW - 30 * 60
    assert hours[0]["cases"] == {"web": 1}  # 13:20 yesterday, in the 13:00 bucket
    assert hours[-2]["cases"] == {"opinion": 1}
    assert hours[-1]["cases"] == {"web": 2}
    assert sum(sum(h["cases"].values()) for h in hours) == 4
    assert view["last_24h"] == {
        "web": {"cases": 3, "received": 4, "rejected": 1},
        "opinion": {"cases": 1, "received": 1, "rejected": 0},
    }
    assert view["window"]["phone"] == {"cases": 2, "received": 2, "rejected": 0}
    assert view["window"]["web"] == {"cases": 4, "received": 5, "rejected": 1}


async def test_refresh_reads_only_recent_hours_and_keeps_the_rest(store: Store) -> None:
    await _fill(store)
    cache = VolumeCache(7, TZ)
    await store.read(lambda tx: cache.refresh(tx, NOW))
    # Old history changed behind the cache's back is not read again (it cannot change) ...
    await store.write(lambda tx: tx.execute("DELETE FROM cases WHERE channel = 'email'"))
    # ... while new cases of this hour and late commits of the previous hour are.
    later = NOW + 20 * 60  # 12:50

    def more(tx: Tx) -> None:
        _case(tx, 200, "phone", NOW - 40 * 60)  # 11:50, committed late
        _case(tx, 201, "phone", later - 60)

    await store.write(more)
    await store.read(lambda tx: cache.refresh(tx, later))
    view = cache.view(later)
    per_day = {d["date"]: d["cases"] for d in view["days"]}
    assert per_day["2024-05-04"] == {"email": 1}
    assert per_day["2024-05-07"] == {"opinion": 1, "web": 2, "phone": 2}
    assert view["hours"][-2]["cases"] == {"opinion": 1, "phone": 1}
    # A day later the first day has left the window and its hours are dropped.
    next_day = NOW + 24 * HOUR
    await store.read(lambda tx: cache.refresh(tx, next_day))
    view = cache.view(next_day)
    assert view["days"][0]["date"] == "2024-05-02"
    assert all(k[0] >= cache.window_start(next_day) for k in cache.hours)
    assert view["window"]["phone"]["cases"] == 3


async def test_rejected_records_are_listed_after_an_id(store: Store) -> None:
    await _fill(store)
    rows = await store.read(lambda tx: q.rejected_after(tx, 0))
    assert [(r.source, r.channel) for r in rows] == [("web", "web")]
    assert json.loads(rows[0].detail or "[]")[0]["code"] == "required"
    assert await store.read(lambda tx: q.rejected_after(tx, rows[0].id)) == []
