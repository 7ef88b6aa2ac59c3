"""Keyed identifiers: same person, same digest; another key, another digest; rotation
matches under the old key; the local key file is owner-only and made once."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.support.config import GatewayConfig
from gateway.support.keyed_ids import IdentifierKeys, IdKind, key_from_text, local_key

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def test_one_person_one_digest_across_spellings() -> None:
    keys = IdentifierKeys(KEY_A)
    email = keys.digest(IdKind.EMAIL, "zhang@example.cn")
    assert keys.digest(IdKind.EMAIL, " Zhang@Example.CN ") == email
    assert keys.digest(IdKind.PHONE, "138 0013 8000") == keys.digest(IdKind.PHONE, "13800138000")
    assert keys.digest(IdKind.PHONE, "13800138000") != keys.digest(IdKind.EMAIL, "13800138000")


def test_digest_is_keyed_and_not_the_plain_hash() -> None:
    import hashlib
    a = IdentifierKeys(KEY_A).digest(IdKind.PHONE, "13800138000")
    b = IdentifierKeys(KEY_B).digest(IdKind.PHONE, "13800138000")
    assert a != b
    assert a != hashlib.sha256(b"13800138000").hexdigest()
    assert "13800138000" not in a


def test_scope_binds_the_digest() -> None:
    keys = IdentifierKeys(KEY_A)
    assert keys.digest(IdKind.PHONE_LAST4, "8000", scope="CY-1") != keys.digest(
        IdKind.PHONE_LAST4, "8000", scope="CY-2")


def test_rotation_matches_under_the_previous_key() -> None:
    old = IdentifierKeys(KEY_A)
    rotated = IdentifierKeys(KEY_B, previous=(KEY_A,))
    stored = old.digest(IdKind.PHONE, "13800138000")
    assert stored in rotated.candidates(IdKind.PHONE, "13800138000")
    current = rotated.digest(IdKind.PHONE, "13800138000")
    assert rotated.candidates(IdKind.PHONE, "13800138000")[0] == current
    assert old.digest64(IdKind.PHONE, "1") in rotated.candidates64(IdKind.PHONE, "1")
    assert -2**63 <= rotated.digest64(IdKind.PHONE, "1") < 2**63


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        key_from_text("abc")
    with pytest.raises(ValueError):
        IdentifierKeys(b"short")
    assert key_from_text("00" * 16) == bytes(16)


def test_local_key_is_made_once_owner_only(tmp_path: Path) -> None:
    first = local_key(tmp_path / "data")
    assert local_key(tmp_path / "data") == first
    mode = stat.S_IMODE((tmp_path / "data" / "identifier.key").stat().st_mode)
    assert mode == 0o600


def test_config_block_reads_keys_from_text(tmp_path: Path) -> None:
    config = GatewayConfig.model_validate(
        {"data_dir": str(tmp_path), "privacy": {"identifier_key": "ab" * 32,
                                                 "previous_identifier_keys": ["cd" * 32]}})
    keys = config.privacy.keys(config.data_dir)
    assert keys.current == bytes.fromhex("ab" * 32)
    assert keys.previous == (bytes.fromhex("cd" * 32),)
    assert not (tmp_path / "identifier.key").exists()
    with pytest.raises(ValueError):
        GatewayConfig.model_validate({"privacy": {"identifier_key": "short"}})
