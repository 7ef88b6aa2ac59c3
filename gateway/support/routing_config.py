"""The config blocks of this package (``taxonomy``, ``classifier``, ``routing``,
``deadlines``, ``reports``): gateway/support/config.py only references them, so the routing
feature keeps its settings beside its code."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.support.mail_config import MailAddress

ReportFormat = Literal["html", "xlsx", "md"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("html", "xlsx", "md")
DEFAULT_ATTACHED: tuple[ReportFormat, ...] = ("xlsx",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaxonomyConfig(_Strict):
    """Where the centre's taxonomy is (YAML, or CSV with code/name/parent or level columns).
    None: no taxonomy, so no classification, routing or per-class due dates."""

    path: Path | None = None


class ClassifierConfig(_Strict):
    """The trained model (``minsheng classify train``); a prediction below ``threshold``
    confidence is not attached to the complaint (a wrong hint costs more than none)."""

    model: Path | None = None
    threshold: float = Field(default=0.6, ge=0, le=1)
    max_chars: int = Field(default=2000, ge=50, le=100_000)


class RoutingConfig(_Strict):
    """The routing rules file (YAML, evaluated in order)."""

    rules: Path | None = None


class DeadlinesConfig(_Strict):
    """Working days per service-level class; ``end_of_day``: a submission after it counts
    from the next working day, and a due date is the end of its working day."""

    enabled: bool = True
    default_working_days: int = Field(default=3, ge=0, le=365)
    service_levels: dict[str, int] = Field(default_factory=lambda: {"standard": 3, "utility": 1})
    end_of_day: time = time(17, 30)


class ReportsConfig(_Strict):
    """The weekly report, built every Monday at ``at`` (local time): written into
    ``folder`` (null: not written) and/or mailed to ``email_to`` through the ``smtp`` block,
    as an HTML mail (Markdown as its plain-text part) with ``email_attach`` attached."""

    enabled: bool = False
    at: time = time(8, 0)
    folder: Path | None = Path("var/reports")
    formats: list[ReportFormat] = Field(default_factory=lambda: list(REPORT_FORMATS))
    email_to: list[MailAddress] = Field(default_factory=list, max_length=100)
    email_attach: list[ReportFormat] = Field(default_factory=lambda: list(DEFAULT_ATTACHED))

    @field_validator("email_to", "email_attach")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("an entry is listed twice")
        return value

    @model_validator(mode="after")
    def _goes_somewhere(self) -> ReportsConfig:
        if self.enabled and self.folder is None and not self.email_to:
            raise ValueError("an enabled report needs a folder or email_to (or both)")
        return self
