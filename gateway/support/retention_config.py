"""The ``retention:`` config block: how long each kind of personal data is kept
(docs/personal-data.md#retention, docs/configuration.md#retention).

Kept apart from config.py so the periods have one place. The gateway is a transit
buffer in front of the case platform (PIPL Art. 19, 21): once every sink confirmed a
case, what the gateway holds beyond dedup, the look-up by code and the metrics has no
purpose left, so it goes after ``delivered_days``.
"""

from __future__ import annotations

from datetime import time

from pydantic import BaseModel, ConfigDict, Field

DAY_S = 86400.0


class RetentionConfig(BaseModel):
    """Periods per data kind, in days. Quarantine entries and dead letters have none on
    purpose: they are never deleted silently (the status page shows their age)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="run the daily purge job")
    delivered_days: float = Field(
        default=30.0, ge=0, allow_inf_nan=False,
        description="raw payloads, attachments and personal fields of a case this many days "
        "after every sink confirmed its delivery")
    wait_for_accepted: bool = Field(
        default=False, description="also wait until the case platform sent the status "
        "'accepted' (set it when the platform sends statuses back)")
    refused_days: float = Field(
        default=7.0, ge=0, allow_inf_nan=False,
        description="rejected and filtered raw records (no case, no quarantine entry)")
    calls_days: float = Field(
        default=30.0, ge=0, allow_inf_nan=False,
        description="calls that never became a case (missed calls counted for the KPIs, "
        "notes whose call never came): their caller number, joined fields and raw events, "
        "this many days after the call's last event")
    run_at: time = Field(default=time(3, 0), description="local time of the daily purge")
    chunk: int = Field(default=200, ge=1, le=5000,
                       description="records per transaction of the purge")

    @property
    def delivered_s(self) -> float:
        return self.delivered_days * DAY_S

    @property
    def refused_s(self) -> float:
        return self.refused_days * DAY_S

    @property
    def calls_s(self) -> float:
        return self.calls_days * DAY_S
