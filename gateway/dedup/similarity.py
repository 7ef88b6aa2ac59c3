"""Near-identical text, for Chinese without word boundaries: normalize, shingle, MinHash.

A text is first normalized: NFKC (full-width letters, digits and punctuation become
their ordinary forms), case folded, everything that is not a letter or a digit dropped
(punctuation, symbols, spaces, line breaks), then the boilerplate phrases (您好, 谢谢,
请问… normalized the same way) deleted. What is left is cut into overlapping character
n-grams (shingles): no word segmentation is needed, and mixed Chinese/Latin/digit text
works the same way.

The shingle set is summarised by a MinHash signature. Each shingle is hashed from its
code points (a 64-bit polynomial through the MurmurHash3 finalizer, high 32 bits; no
per-process salt), then ``NUM_PERM`` affine permutations ``a*h + b mod 2**32`` (odd
``a``, drawn once from a fixed seed, as datasketch's ``affine32`` scheme does) are
applied to all shingles at once with numpy and the minima kept: every replica and every
restart computes the same values. Its first ``BANDS × ROWS`` values are cut into bands;
each band hashes to a 32-bit *band key*.
Two texts with Jaccard similarity ``s`` share at least one band key with probability
``1 - (1 - s**ROWS)**BANDS`` (0.93 at s = 0.5, 0.99 at 0.6, 0.0025 at 0.05). Band keys
are rows in the store, so an indexed lookup finds the candidates whatever the number of
stored cases; 32 bits keep the index small while chance collisions stay negligible
(20 bands × 10⁶ cases / 2³² ≈ 0.005 per lookup). The low 16 bits of all ``NUM_PERM``
values are kept beside the case to estimate the similarity of each candidate (standard
error ≈ 0.045 at 0.5).

Changing ``NUM_PERM``, ``ROWS``, ``SEED`` or the scheme makes new signatures
incomparable with stored ones: do it only with an emptied index (entries age out with
the window anyway). Lowering ``BANDS`` does not: a band's key depends only on its own
values and its number, so the first bands keep their keys (bench/README.md measured
fewer bands: 14 keep R ≥ 0.99 but save under 2 % of a request, so 20 stay).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

NUM_PERM = 128
BANDS = 20
ROWS = 3
SEED = 1
MAX_CHARS = 4000  # longer texts are compared on their first MAX_CHARS normalized characters

_NOT_WORD = re.compile(r"[\W_]+")  # punctuation, symbols, spaces, controls (not CJK, not digits)
_SHINGLE_BASE = np.uint64(0xCBF29CE484222325)  # FNV-1a offset basis: a nonzero start


def _ascii_compatibles() -> dict[str, str]:
    """Characters whose NFKC form is plain ASCII text (full-width letters, digits and
    punctuation, the ideographic space, ``…``, ``㎏``…), each to that form."""
    table = {}
    for block in (range(0x80, 0x3400), range(0xA000, 0xD800), range(0xF900, 0x10000)):
        for code in block:
            char = chr(code)
            form = unicodedata.normalize("NFKD", char)
            if form != char and form.isascii() and unicodedata.normalize("NFKC", char) == form:
                table[char] = form
    return table


_ASCII_COMPATIBLES = _ascii_compatibles()
_ASCII_COMPATIBLE = re.compile("[" + "".join(map(re.escape, _ASCII_COMPATIBLES)) + "]")


def nfkc(text: str) -> str:
    """``unicodedata.normalize("NFKC", text)``, cheaper for Chinese text.

    Chinese text is seldom NFKC-stable only because of its full-width punctuation
    (，？！：), and CPython's normalizer then works through the whole text (~11 µs for a
    100-character complaint). Those characters are replaced by their ASCII forms first
    (one regex pass); what is left is then usually NFKC-stable (a quick check) and
    normalized only when not. The result is the same: NFKC is composition of the full
    compatibility decomposition, which those replacements leave unchanged (their forms
    are ASCII: fully decomposed, combining class 0)."""
    text = _ASCII_COMPATIBLE.sub(lambda m: _ASCII_COMPATIBLES[m.group()], text)
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


def strip_text(text: str) -> str:
    """NFKC, case folded, letters and digits only.

    ``"ＡＢＣ，１２３ 您好！"`` → ``"abc123您好"``.
    """
    return _NOT_WORD.sub("", nfkc(text).casefold())


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


def _permutations(seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Parameters of the affine permutations: odd multipliers (a bijection mod 2**32)."""
    rng = np.random.RandomState(seed)
    a = rng.randint(0, 2**31, size=NUM_PERM, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.randint(0, 2**32, size=NUM_PERM, dtype=np.uint64)
    return a.astype("<u4"), b.astype("<u4")


_PERM_A, _PERM_B = _permutations(SEED)
_EMPTY = np.full(NUM_PERM, 0xFFFFFFFF, dtype="<u4")
_MULT = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime, as a polynomial base
_BAND_BASE = np.arange(1, BANDS + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
_S33, _S32 = np.uint64(33), np.uint64(32)
_FMIX1, _FMIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)

U32Array = np.ndarray[Any, np.dtype[np.uint32]]
U64Array = np.ndarray[Any, np.dtype[np.uint64]]


def _fmix64(h: U64Array) -> U64Array:
    """MurmurHash3's 64-bit finalizer: a fixed avalanching bijection (wraps mod 2**64)."""
    h = h ^ (h >> _S33)
    h = h * _FMIX1
    h = h ^ (h >> _S33)
    h = h * _FMIX2
    result: U64Array = h ^ (h >> _S33)
    return result


def _columns_hash(columns: Sequence[np.ndarray[Any, Any]],
                  base: U64Array | np.uint64) -> U32Array:
    """One stable 32-bit hash per row of a table given column by column: a polynomial over
    the row's code points (mod 2**64) through ``_fmix64``, high half kept. No per-process
    salt, unlike ``hash()``."""
    h = np.full(len(columns[0]), base, dtype=np.uint64)
    for column in columns:
        h = h * _MULT + column.astype(np.uint64, copy=False)
    result: U32Array = (_fmix64(h) >> _S32).astype("<u4")
    return result


def _rows_hash(codes: np.ndarray[Any, Any], base: U64Array | np.uint64) -> U32Array:
    """``_columns_hash`` of a 2-D array of code points, one row per shingle."""
    return _columns_hash([codes[:, c] for c in range(codes.shape[1])], base)


def _codes(text: str) -> U32Array:
    codes: U32Array = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    return codes


def _signature(hashes: U32Array) -> U32Array:
    """Apply all ``NUM_PERM`` affine permutations (``a*h + b mod 2**32``, parameters drawn
    from ``SEED``) to every shingle hash at once; keep the minima."""
    if hashes.size == 0:
        return _EMPTY.copy()
    permuted = np.multiply.outer(hashes, _PERM_A)
    permuted += _PERM_B
    values: U32Array = permuted.min(axis=0).astype("<u4")
    return values


def minhash(shingles: Iterable[str]) -> U32Array:
    """The ``NUM_PERM`` MinHash values of a shingle set (all maximal when it is empty).

    The same values as ``minhash_text`` gives for the text the shingles were cut from."""
    items = list(shingles)
    if not items:
        return _EMPTY.copy()
    width = len(items[0])
    if all(len(s) == width for s in items):
        hashes = _rows_hash(_codes("".join(items)).reshape(len(items), width), _SHINGLE_BASE)
    else:
        hashes = np.concatenate([_rows_hash(_codes(s).reshape(1, len(s)), _SHINGLE_BASE)
                                 for s in items])
    return _signature(hashes)


def minhash_text(normalized: str, shingle_size: int) -> U32Array:
    """``minhash(TextProfile(shingle_size).shingles(normalized))`` without building the
    shingle strings: every character ``shingle_size``-gram is hashed in one numpy pass."""
    if not normalized:
        return _EMPTY.copy()
    codes = _codes(normalized).astype(np.uint64)
    if len(codes) <= shingle_size:
        return _signature(_rows_hash(codes.reshape(1, len(codes)), _SHINGLE_BASE))
    # Column i of the shingle table is the text shifted by i: slices, no window view
    # (numpy's sliding_window_view costs more than the hashing for a complaint's text).
    count = len(codes) - shingle_size + 1
    columns = [codes[i:i + count] for i in range(shingle_size)]
    return _signature(_columns_hash(columns, _SHINGLE_BASE))


def band_keys(values: U32Array) -> list[int]:
    """One signed 32-bit key per band of ``ROWS`` values; the band number is hashed in, so
    equal values in different bands do not collide."""
    rows = np.asarray(values[:BANDS * ROWS], dtype="<u4").reshape(BANDS, ROWS)
    h = _BAND_BASE.copy()
    for column in range(ROWS):
        h = h * _MULT + rows[:, column].astype(np.uint64)
    keys: list[int] = (_fmix64(h) >> _S32).astype("<u4").view("<i4").tolist()
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
