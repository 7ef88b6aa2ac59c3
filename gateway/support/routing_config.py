"""The config blocks of this package (``taxonomy``, ``classifier``, ``routing``,
``deadlines``, ``reports``): gateway/support/config.py only references them, so the routing
feature keeps its settings beside its code."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ReportFormat = Literal["html", "xlsx", "md"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("html", "xlsx", "md")


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
    """The weekly report written every Monday at ``at`` (local time) into ``folder``.
    E-mail delivery is not built yet (it needs the SMTP support of another issue)."""

    enabled: bool = False
    at: time = time(8, 0)
    folder: Path = Path("var/reports")
    formats: list[ReportFormat] = Field(default_factory=lambda: list(REPORT_FORMATS))
