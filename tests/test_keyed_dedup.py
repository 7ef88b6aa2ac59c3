"""Keyed reporter keys in the dedup index (issue 18, item 2), on both engines: rows hold
HMAC digests, never a plain hash of the number; a rotated key keeps finding entries
filed under the old one while it is listed; migration 10 replaces the old unkeyed rows
and the gateway files their cases again; a shared store without a key is refused."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.dedup.deduplicator import Deduplicator
from gateway.dedup.similarity import key_hash
from gateway.intake.pipeline import Intake
from gateway.model.errors import ConfigError
from gateway.server.app import rekey_reporters
from gateway.store import Store, migrations
from gateway.support.config import parse_config
from gateway.support.keyed_ids import IdentifierKeys, IdKind
from tests.conftest import started_store
from tests.test_dedup_store import NOISE, NOISE_AGAIN, T0, raw
from tests.test_dedup_store import make_intake as _shared_key_intake

KEY_A, KEY_B = bytes(range(32)), bytes(range(100, 132))
PHONE = "+8613800138000"
REPORTER = f"tel:{PHONE}"


def intake_with(store: Store, keys: IdentifierKeys) -> Intake:
    intake = _shared_key_intake(store)
    intake.dedup = Deduplicator(intake.dedup.config, (), keys)
    return intake


async def reporter_keys(store: Store) -> set[int]:
    rows = await store.read(lambda tx: tx.fetchall("SELECT reporter_key FROM dedup_reporters"))
    return {int(r[0]) for r in rows}


def plain_hashes() -> set[int]:
    """What an unkeyed scheme would store: the old key_hash and 64-bit prefixes of
    blake2b, sha256 and md5 of every spelling of the number."""
    found = set()
    for text in (REPORTER, PHONE, PHONE[3:], PHONE[1:]):
        found.add(key_hash(text))
        for digest in (hashlib.blake2b(text.encode(), digest_size=8).digest(),
                       hashlib.sha256(text.encode()).digest(), hashlib.md5(text.encode()).digest()):
            found |= {int.from_bytes(digest[:8], order, signed=True)
                      for order in ("big", "little")}
    return found


async def test_reporter_rows_are_keyed_digests(store: Store) -> None:
    first = await intake_with(store, IdentifierKeys(KEY_A)).submit(raw("hotline", NOISE,
                                                                       phone=PHONE))
    assert first.outcome == "new"
    stored = await reporter_keys(store)
    assert stored == {IdentifierKeys(KEY_A).digest64(IdKind.TEXT, REPORTER)}
    assert not stored & plain_hashes()


async def test_rotation_keeps_finding_old_entries_while_the_old_key_is_listed(
        store: Store) -> None:
    old = await intake_with(store, IdentifierKeys(KEY_A)).submit(raw("hotline", NOISE,
                                                                     phone=PHONE))
    rotated = intake_with(store, IdentifierKeys(KEY_B, (KEY_A,)))
    repeat = await rotated.submit(raw("web", NOISE_AGAIN, at=T0 + timedelta(days=1),
                                      phone=PHONE))
    assert (repeat.outcome, repeat.repeat_of) == ("repeat", old.case_code)
    # New entries are filed under the new key only.
    assert await reporter_keys(store) == {IdentifierKeys(k).digest64(IdKind.TEXT, REPORTER)
                                          for k in (KEY_A, KEY_B)}
    # The old key dropped: the entry filed under it is no longer the same reporter's
    # (only its text still relates it); the one filed under the new key still is.
    dropped = intake_with(store, IdentifierKeys(KEY_B))
    later = await dropped.submit(raw("web", NOISE, at=T0 + timedelta(days=2), phone=PHONE))
    assert (later.outcome, later.repeat_of) == ("repeat", old.case_code)  # via the repeat
    alone = intake_with(store, IdentifierKeys(bytes(range(200, 232))))
    stranger = await alone.submit(raw("web", NOISE, at=T0 + timedelta(days=3), phone=PHONE))
    assert stranger.outcome == "related"


async def test_sqlite_file_holds_no_plain_hash_of_the_number(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    async with started_store(url) as store:
        intake = intake_with(store, IdentifierKeys(KEY_A))
        for day in range(3):
            await intake.submit(raw("hotline", NOISE, at=T0 + timedelta(days=day), phone=PHONE))
    data = b"".join(p.read_bytes() for p in tmp_path.glob("gateway.db*"))  # file and WAL
    keyed = IdentifierKeys(KEY_A).digest64(IdKind.TEXT, REPORTER)
    assert keyed.to_bytes(8, "big", signed=True) in data  # SQLite's 8-byte integers: found
    for value in plain_hashes():
        assert value.to_bytes(8, "big", signed=True) not in data
    for text in (REPORTER, PHONE, PHONE[3:]):
        for name in ("blake2b", "sha256", "md5", "sha1"):
            digest = hashlib.new(name, text.encode())
            assert digest.digest() not in data
            assert digest.hexdigest().encode() not in data


async def test_migration_10_replaces_unkeyed_rows_and_the_gateway_rekeys_them(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = IdentifierKeys(KEY_A)
    with monkeypatch.context() as before_10:
        # the schema before migration 10, plus the feed positions (12) that today's
        # intake code needs on PostgreSQL; 10 and 11 come when the store starts again
        before_10.setattr(migrations, "MIGRATIONS",
                          [m for m in migrations.MIGRATIONS if m[0] < 10 or m[0] == 12])
        async with started_store(store_url) as old:
            first = await intake_with(old, keys).submit(raw("hotline", NOISE, phone=PHONE))
            # what the gateway stored before keyed identifiers
            await old.write(lambda tx: tx.execute(
                "UPDATE dedup_reporters SET reporter_key = ?", (key_hash(REPORTER),)))
    async with started_store(store_url) as store:
        assert await reporter_keys(store) == set()
        pending = await store.read(lambda tx: tx.fetchall("SELECT case_id FROM dedup_rekey"))
        assert len(pending) == 1
        intake = intake_with(store, keys)
        assert await rekey_reporters(store, intake.dedup) == 1
        assert await rekey_reporters(store, intake.dedup) == 0
        assert await reporter_keys(store) == {keys.digest64(IdKind.TEXT, REPORTER)}
        repeat = await intake.submit(raw("web", NOISE_AGAIN, at=T0 + timedelta(days=1),
                                         phone=PHONE))
    assert (repeat.outcome, repeat.repeat_of) == ("repeat", first.case_code)


@pytest.mark.parametrize(("url", "privacy", "refused"), [
    ("postgresql://gw@db/minsheng", {}, True),
    ("postgresql://gw@db/minsheng", {"identifier_key": "${MINSHENG_TEST_ID_KEY}"}, False),
    ("sqlite:///var/gateway.db", {}, False),
])
def test_a_shared_store_needs_a_configured_key(url: str, privacy: dict[str, str], refused: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINSHENG_TEST_ID_KEY", "ab" * 32)
    raw_config = {"store": {"url": url}, "privacy": privacy}
    if not refused:
        assert parse_config(raw_config).store.url == url
        return
    with pytest.raises(ConfigError) as caught:
        parse_config(raw_config)
    message = "\n".join(caught.value.errors)
    assert "privacy.identifier_key" in message and "共享的 PostgreSQL" in message
    assert "shared by replicas" in message

