"""Near-identical text, for Chinese without word boundaries: normalize, shingle, MinHash.

A text is first normalized: NFKC (full-width letters, digits and punctuation become
their ordinary forms), case folded, everything that is not a letter or a digit dropped
(punctuation, symbols, spaces, line breaks), then the boilerplate phrases (您好, 谢谢,
请问… normalized the same way) deleted. What is left is cut into overlapping character
n-grams (shingles): no word segmentation is needed, and mixed Chinese/Latin/digit text
works the same way.

The shingle set is summarised by a MinHash signature (datasketch, ``affine32`` scheme,
fixed seed: every replica and every restart computes the same values). Its first
``BANDS × ROWS`` values are cut into bands; each band hashes to a 32-bit *band key*.
Two texts with Jaccard similarity ``s`` share at least one band key with probability
``1 - (1 - s**ROWS)**BANDS`` (0.93 at s = 0.5, 0.99 at 0.6, 0.0025 at 0.05). Band keys
are rows in the store, so an indexed lookup finds the candidates whatever the number of
stored cases; 32 bits keep the index small while chance collisions stay negligible
(20 bands × 10⁶ cases / 2³² ≈ 0.005 per lookup). The low 16 bits of all ``NUM_PERM``
values are kept beside the case to estimate the similarity of each candidate (standard
error ≈ 0.045 at 0.5).

Changing ``NUM_PERM``, ``BANDS``, ``ROWS``, ``SEED`` or the scheme makes new signatures
incomparable with stored ones: do it only with an emptied index (entries age out with
the window anyway).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from datasketch import MinHash

NUM_PERM = 128
BANDS = 20
ROWS = 3
SEED = 1
SCHEME = "affine32"
MAX_CHARS = 4000  # longer texts are compared on their first MAX_CHARS normalized characters

_NOT_WORD = re.compile(r"[\W_]+")  # punctuation, symbols, spaces, controls (not CJK, not digits)
_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME)


def strip_text(text: str) -> str:
    """NFKC, case folded, letters and digits only.

    ``"ＡＢＣ，１２３ 您好！"`` → ``"abc123您好"``.
    """
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def key_hash(text: str) -> int:
    """A stable signed 64-bit hash (fits BIGINT on both engines)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class TextProfile:
    """How texts are compared: shingle size and boilerplate phrases (from the config)."""

    def __init__(self, shingle_size: int = 3, boilerplate: Iterable[str] = ()) -> None:
        self.shingle_size = shingle_size
        phrases = sorted({p for p in (strip_text(b) for b in boilerplate) if p},
                         key=len, reverse=True)
        self._boilerplate = re.compile("|".join(map(re.escape, phrases))) if phrases else None

    def normalize(self, text: str, limit: int | None = MAX_CHARS) -> str:
        """The comparable form of ``text``: stripped, boilerplate removed, at most
        ``limit`` characters."""
        stripped = strip_text(text)
        if self._boilerplate is not None:
            stripped = self._boilerplate.sub("", stripped)
        return stripped if limit is None else stripped[:limit]

    def shingles(self, normalized: str) -> set[str]:
        """Character n-grams of a normalized text; a shorter text is one shingle."""
        k = self.shingle_size
        if len(normalized) <= k:
            return {normalized} if normalized else set()
        return {normalized[i:i + k] for i in range(len(normalized) - k + 1)}


def minhash(shingles: Iterable[str]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """The ``NUM_PERM`` MinHash values of a shingle set (all maximal when it is empty)."""
    sketch = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME,
                     permutations=_TEMPLATE.permutations)
    sketch.update_batch([s.encode("utf-8") for s in shingles])
    values: np.ndarray[Any, np.dtype[np.uint32]] = sketch.hashvalues.astype("<u4")
    return values


def band_keys(values: np.ndarray[Any, np.dtype[np.uint32]]) -> list[int]:
    """One signed 32-bit key per band of ``ROWS`` values; the band number is hashed in, so
    equal values in different bands do not collide."""
    keys = []
    for band in range(BANDS):
        chunk = values[band * ROWS:(band + 1) * ROWS].astype("<u4").tobytes()
        digest = hashlib.blake2b(bytes([band]) + chunk, digest_size=4).digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return keys


def compact(values: np.ndarray[Any, np.dtype[np.uint32]]) -> bytes:
    """The low 16 bits of each value: what is stored to estimate similarity later."""
    return (values & 0xFFFF).astype("<u2").tobytes()


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two compact signatures (0 when either is empty)."""
    if not a or len(a) != len(b):
        return 0.0
    left = np.frombuffer(a, dtype="<u2")
    right = np.frombuffer(b, dtype="<u2")
    return float(np.count_nonzero(left == right)) / len(left)


def jaccard(a: Sequence[str] | set[str], b: Sequence[str] | set[str]) -> float:
    """Exact Jaccard similarity of two shingle sets (for tests and the benchmark)."""
    left, right = set(a), set(b)
    union = left | right
    return len(left & right) / len(union) if union else 0.0
