"""Keyed identifiers: a phone number, e-mail address or ID-card number turned into an
HMAC-SHA256 digest under a secret key, wherever data is keyed by who wrote it (dedup
reporters, repeat detection, rate-limit buckets, the look-up by code).

Why keyed: a plain hash of a mobile number is reversed by trying the ~10^11 numbers; an
HMAC without the key is not, so the store alone does not reveal who wrote (PIPL Art. 51,
docs/personal-data.md). Why several keys: rotation. Digests are made with the current
key; matching tries the current key and every previous one still listed, so a key can be
replaced without losing the matches made under the old one during a window.

Values are canonicalised per kind before hashing (an e-mail address lower-cased, a phone
number as digits, an ID-card number upper-cased) so one person has one digest.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gateway.model.private_files import open_private, private_dir

log = logging.getLogger(__name__)

KEY_FILE_NAME = "identifier.key"
MIN_KEY_BYTES = 16


class IdKind(StrEnum):
    """What an identifier is: part of the digest, so a phone and an e-mail never collide."""

    PHONE = "phone"
    EMAIL = "email"
    ID_NUMBER = "id_number"
    PHONE_LAST4 = "phone_last4"  # the look-up by code: (case code, last four digits)
    CLIENT = "client"  # a rate-limit bucket's client address
    TEXT = "text"  # an already canonical key (dedup's reporter keys carry their kind)


def canonical(kind: IdKind, value: str) -> str:
    """One spelling per person: what is hashed."""
    text = value.strip()
    if kind is IdKind.EMAIL:
        return text.lower()
    if kind in (IdKind.PHONE, IdKind.PHONE_LAST4):
        return "".join(c for c in text if c.isdigit())
    if kind is IdKind.ID_NUMBER:
        return text.upper()
    return text


@dataclass(frozen=True)
class IdentifierKeys:
    """The current key and the previous ones still accepted for matching."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        for key in (self.current, *self.previous):
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"an identifier key needs at least {MIN_KEY_BYTES} bytes")

    def digest(self, kind: IdKind, value: str, *, scope: str = "") -> str:
        """Hex HMAC-SHA256 under the current key. ``scope`` binds the digest to something
        (a case code for the last four digits), so equal digits elsewhere do not match."""
        return _mac(self.current, kind, value, scope).hex()

    def candidates(self, kind: IdKind, value: str, *, scope: str = "") -> list[str]:
        """The digest under every accepted key, current first: what matching looks for."""
        message = _message(kind, value, scope)
        return [hmac.digest(key, message, "sha256").hex()
                for key in (self.current, *self.previous)]

    def digest64(self, kind: IdKind, value: str, *, scope: str = "") -> int:
        """The first 8 bytes of the digest as a signed 64-bit integer, for BIGINT columns
        (the dedup index's reporter keys). Still keyed: not reversible without the key."""
        return _as_int64(_mac(self.current, kind, value, scope))

    def candidates64(self, kind: IdKind, value: str, *, scope: str = "") -> list[int]:
        """``digest64`` under every accepted key, current first."""
        message = _message(kind, value, scope)
        return [_as_int64(hmac.digest(key, message, "sha256"))
                for key in (self.current, *self.previous)]


def _message(kind: IdKind, value: str, scope: str) -> bytes:
    """What is MACed: the kind, the scope and the canonical value."""
    text = f"{kind.value}\x1f{scope}\x1f{canonical(kind, value)}"
    return text.encode("utf-8", "surrogatepass")


def _mac(key: bytes, kind: IdKind, value: str, scope: str) -> bytes:
    """HMAC-SHA256 of the message under ``key``: ``hmac.digest``, the one-shot C path
    (several times cheaper than an ``hmac.new`` object; a few run per submission)."""
    return hmac.digest(key, _message(kind, value, scope), "sha256")


def _as_int64(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big", signed=True)


def key_from_text(text: str) -> bytes:
    """A configured key: hex (64 characters and the like) is decoded, anything else is
    taken as UTF-8 text; either way it must carry at least 16 bytes."""
    stripped = text.strip()
    try:
        raw = bytes.fromhex(stripped)
    except ValueError:
        raw = stripped.encode("utf-8")
    if len(raw) < MIN_KEY_BYTES:
        raise ValueError(f"an identifier key needs at least {MIN_KEY_BYTES} bytes "
                         "(openssl rand -hex 32)")
    return raw


def local_key(data_dir: Path) -> bytes:
    """The key of a single machine that was given none: made once, random, kept owner-only
    in ``data_dir/identifier.key``. Good for ``make run`` and one replica; replicas sharing
    a PostgreSQL store must share a key from the environment (docs/personal-data.md)."""
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        private_dir(data_dir)
        try:
            fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:  # made meanwhile by another process
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            log.warning("no privacy.identifier_key configured: made a local key in %s "
                        "(replicas must share one key from the environment)", path)
    return key_from_text(path.read_text())


def ephemeral_keys() -> IdentifierKeys:
    """A random key held in memory only: for a component used without config (a test, a
    dry run), where nothing keyed outlives the process."""
    return IdentifierKeys(secrets.token_bytes(32))


def identifier_keys(configured: str | None, previous: Sequence[str],
                    data_dir: Path) -> IdentifierKeys:
    """The keys to use: the configured one (``${MINSHENG_IDENTIFIER_KEY}``) or the local
    key file, plus the previous keys still accepted."""
    current = key_from_text(configured) if configured else local_key(data_dir)
    return IdentifierKeys(current, tuple(key_from_text(p) for p in previous))
