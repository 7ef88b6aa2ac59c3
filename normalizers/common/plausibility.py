"""How plausible a decoded text is: the measure behind every charset decision.

A wrong charset leaves marks in the text it produces, and different marks for
different mistakes:

- GBK or Big5 read as Latin-1 or Cyrillic: runs of accented letters, symbols and
  case changes inside words (``×ª·¢£ºÕûÌå``); charset-normalizer's mess measure
  (``charset_normalizer.md.mess_ratio``, its documented "mess detector") scores these;
- Latin-1, KOI8-R or cp1251 text read as GBK, or GBK read as Big5: valid but *rare*
  Chinese characters (``噈晧``, ``婑秞``), and Chinese characters standing alone
  between Latin letters (``M黱chen``). The mess measure does not see these, so they
  are counted here (Hangul likewise: cp949 reads GBK as rare syllables and Hanja
  glued to Hangul): a character is *common* when it is in the first, most-used level
  of GB2312 (3,755 characters that cover over 99 % of running simplified text), of
  Big5 (5,401 for traditional text) or of JIS X 0208 (2,965 for Japanese);
- bytes no table maps: private-use characters, C1 controls, U+FFFD.

``implausibility`` adds these up (0 is clean text; above ``PLAUSIBLE`` something is
wrong). It looks at most at ``SAMPLE_CHARS`` characters around the non-ASCII ones, so
a large page costs no more than a mail.
"""

from __future__ import annotations

import functools
import re

from charset_normalizer.md import mess_ratio

# At or below this a reading is believed (charset-normalizer treats 0.2 as its
# default limit of acceptable mess; names and rare characters stay well below).
PLAUSIBLE = 0.2
SAMPLE_CHARS = 3000
_RARE_WEIGHT = 0.6
_STRAY_WEIGHT = 1.0
_BROKEN_WEIGHT = 2.0
_ODD_WEIGHT = 0.5
_HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_STRAY = re.compile(r"(?<=[A-Za-z\u00c0-\u024f])[\u3400-\u9fff](?=[A-Za-z\u00c0-\u024f])"
                    r"|(?<=[\uac00-\ud7af])[\u3400-\u9fff]|[\u3400-\u9fff](?=[\uac00-\ud7af])")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_BROKEN = re.compile(r"[\ufffd\ue000-\uf8ff\x80-\x9f\udc80-\udcff]")
# Symbols and letters that single-byte tables produce from CJK bytes (``Нх†ґ`` is
# 王喆 read as cp1251): symbols, superscripts, box drawing, half-width katakana, and
# Cyrillic letters outside the Russian alphabet.
_ODD = re.compile(
    r"[\u00a4\u00a6\u00a8\u00aa\u00af\u00b2-\u00b4\u00b8-\u00ba\u00bc-\u00be\u00d7"
    r"\u00f7\u02c6\u02dc\u2020\u2021\u2030\u2116\u2500-\u259f\uff61-\uff9f"
    r"\u0400\u0402-\u040f\u0450\u0452-\u045f\u0490\u0491]"
)
_OTHER_NON_ASCII = re.compile(r"[^\x00-\x7f\u3000-\u30ff\u3400-\u9fff\uac00-\ud7af\uff00-\uff60]")
_SMOOTHING = 3  # added to a count before it divides: two characters prove little
# Words of Latin or Cyrillic letters (and the signs a single-byte table puts among
# them). One with non-ASCII letters is odd when its case goes up inside it (``ÔëÒô``
# is 噪音 read as Latin-1, ``дцьЯ`` äöüß read as cp1251), when two capitals are followed
# by a small letter (``ДЖЭъ``) or when it holds a sign (``ÕÅÎ°`` is 张伟 read as Latin-1).
_WORD = re.compile(r"[A-Za-z\u00a1-\u024f\u0400-\u04ff]+")
_SIGN = re.compile(r"[\u00a1-\u00bf\u00d7\u00f7]")
# (codec, first lead byte, last lead byte) of each table's level of common characters.
_COMMON_LEVELS = (("gb2312", 0xB0, 0xD7), ("big5", 0xA4, 0xC6), ("euc_jp", 0xB0, 0xCF))


@functools.lru_cache(maxsize=65536)
def is_common_hanzi(char: str) -> bool:
    """Whether ``char`` is in a first-level (most used) table of Chinese or Japanese."""
    for codec, first, last in _COMMON_LEVELS:
        try:
            encoded = char.encode(codec)
        except UnicodeEncodeError:
            continue
        if len(encoded) == 2 and first <= encoded[0] <= last:
            return True
    return False


def sample(text: str) -> str:
    """The lines of ``text`` that hold non-ASCII characters, at most ``SAMPLE_CHARS``."""
    if text.isascii():
        return ""
    if len(text) <= SAMPLE_CHARS:
        return text
    kept: list[str] = []
    size = 0
    for line in text.splitlines():
        if not line.isascii():
            kept.append(line[:SAMPLE_CHARS])
            size += len(kept[-1])
            if size >= SAMPLE_CHARS:
                break
    return "\n".join(kept)[:SAMPLE_CHARS]


def rare_hanzi_share(text: str) -> float:
    """Of the Chinese characters and Hangul syllables in ``text``, the share that is not
    common (smoothed): Hangul is common when in KS X 1001's 2,350 syllables (cp949 reads
    GBK bytes as the other 8,822, ``풭톖``)."""
    hanzi = _HANZI.findall(text)
    hangul = _HANGUL.findall(text)
    if not hanzi and not hangul:
        return 0.0
    rare = sum(not is_common_hanzi(h) for h in hanzi) + sum(map(_rare_hangul, hangul))
    return rare / (len(hanzi) + len(hangul) + _SMOOTHING)


@functools.lru_cache(maxsize=16384)
def _rare_hangul(char: str) -> bool:
    try:  # Python's euc_kr writes the other syllables as 8-byte jamo sequences
        return len(char.encode("euc_kr")) != 2
    except UnicodeEncodeError:
        return True


def odd_word_share(text: str) -> float:
    """Of the words with non-ASCII letters in ``text``, the share that is odd (smoothed)."""
    words = [w for w in _WORD.findall(text)
             if not w.isascii() and any(ch.isalpha() for ch in w)]
    if not words:
        return 0.0
    return sum(_odd_word(w) for w in words) / (len(words) + _SMOOTHING)


def _odd_word(word: str) -> bool:
    word = word.strip("\u00a1\u00bf\u00ab\u00bb")  # ¡Hola! ¿Qué? «Wort»
    if _SIGN.search(word.removeprefix("\u00b0")):  # but 20°C is a temperature
        return True
    for index in range(len(word) - 1):
        first, second, third = word[index], word[index + 1], word[index + 2:index + 3]
        if first.islower() and second.isupper():
            return True
        if first.isupper() and second.isupper() and third.islower():
            return True
    return False


def implausibility(text: str) -> float:
    """How wrong ``text`` looks as text: 0 for clean text, more the more marks of a
    wrong charset it carries (see the module's docstring)."""
    part = sample(text)
    if not part:
        return 0.0
    non_ascii = sum(not ch.isascii() for ch in part)
    hanzi = len(_HANZI.findall(part))
    score = mess_ratio(part, maximum_threshold=1.0)
    score += _RARE_WEIGHT * rare_hanzi_share(part)
    if hanzi:  # beside Latin letters (M黱chen) or Hangul (혐이麗뤄): a stray
        score += _STRAY_WEIGHT * len(_STRAY.findall(part)) / (hanzi + _SMOOTHING)
    score += _BROKEN_WEIGHT * len(_BROKEN.findall(part)) / non_ascii
    score += odd_word_share(part)
    others = len(_OTHER_NON_ASCII.findall(part))
    score += _ODD_WEIGHT * len(_ODD.findall(part)) / (others + _SMOOTHING)
    return score
