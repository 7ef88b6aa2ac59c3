"""Is a public post about us? Include and exclude keywords on its title and text.

An item is relevant when it contains at least one ``include`` keyword (or no include
keywords are configured) and none of the ``exclude`` keywords. Matching ignores case
and width (NFKC: ``ＡＢＣ`` matches ``abc``) and blanks inside the text, so a keyword
split by a line break or a full-width space still matches.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

_BLANKS = re.compile(r"\s+")


class Relevance(BaseModel):
    """The ``relevance`` block of a feed or site source."""

    model_config = ConfigDict(extra="forbid")

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)

    @field_validator("include", "exclude")
    @classmethod
    def _no_blank_keywords(cls, value: list[str]) -> list[str]:
        if any(not _fold(k) for k in value):
            raise ValueError("keywords must not be blank")
        return value

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)


@dataclass(frozen=True)
class Verdict:
    relevant: bool
    reason: str = ""
    keyword: str | None = None


def _fold(text: str) -> str:
    return _BLANKS.sub("", unicodedata.normalize("NFKC", text)).casefold()


def check(rules: Relevance, *texts: str | None) -> Verdict:
    """Whether the texts (title, body…) pass ``rules``, and why not."""
    haystack = _fold(" ".join(t for t in texts if t))
    for keyword in rules.exclude:
        if _fold(keyword) in haystack:
            return Verdict(False, f"exclude keyword {keyword!r}", keyword)
    if not rules.include:
        return Verdict(True)
    for keyword in rules.include:
        if _fold(keyword) in haystack:
            return Verdict(True, f"include keyword {keyword!r}", keyword)
    return Verdict(False, "no include keyword")
