"""The ``open311:`` config block: what ``GET /open311/v2/services.json`` lists and how a
case maps to one of those services (gateway/server/open311.py, docs/downstream.md).

Open311 GeoReport v2 names a *service* per kind of request (``service_code``); the
gateway's cases carry a taxonomy class (``classification``), a category hint from the
form, and maybe the platform's final category (status API). A service lists the
categories it covers in ``categories`` (class codes or names, exactly as they appear); the
case's categories are tried in order (the platform's final category first) and the
first service covering one is the case's service.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open311Service(_Strict):
    code: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    group: str | None = Field(default=None, max_length=200)
    keywords: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)


class Open311Config(_Strict):
    """``jurisdiction_id``: when set, a request naming another jurisdiction is a 404."""

    jurisdiction_id: str | None = Field(default=None, min_length=1, max_length=200)
    services: list[Open311Service] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_codes(self) -> Open311Config:
        codes = [s.code for s in self.services]
        twice = sorted({c for c in codes if codes.count(c) > 1})
        if twice:
            raise ValueError(f"service codes must be unique; repeated: {', '.join(twice)}")
        return self

    def service_for(self, categories: Iterable[str]) -> Open311Service | None:
        """The service of the first of ``categories`` (most trusted first) that a service
        covers; None when none does."""
        for category in categories:
            for service in self.services:
                if category in service.categories:
                    return service
        return None
