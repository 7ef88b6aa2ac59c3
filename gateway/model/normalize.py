"""What a normalizer is, and the context it is given.

A normalizer is a pure function ``(RawRecord, NormalizerContext) -> ComplaintDraft`` for
one format; it raises ``Rejected`` naming the field and reason when the input breaks the
standard. The context carries the source's configured options, the time zone and the
``resources`` its adapter resolved from them (a parsed site definition), so the function
stays free of global state and I/O and is usable from ``minsheng normalize``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from gateway.model.errors import ConfigError
from gateway.model.schema import ComplaintDraft, RawRecord

M = TypeVar("M", bound=BaseModel)


@dataclass
class NormalizerContext:
    source: str
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    options: Mapping[str, Any] = field(default_factory=dict)
    # Data the source's adapter resolved from its options for the normalizer (e.g. a
    # parsed site definition), so the normalizer reads no file (``Adapter.resources``).
    resources: dict[str, Any] = field(default_factory=dict)
    _settings: dict[type[BaseModel], BaseModel] = field(default_factory=dict, repr=False)

    def settings(self, model: type[M]) -> M:
        """The source's options read as ``model`` (unknown keys ignored), parsed once."""
        found = self._settings.get(model)
        if found is None:
            known = {k: v for k, v in self.options.items() if k in model.model_fields}
            try:
                found = self._settings[model] = model.model_validate(known)
            except ValidationError as exc:
                raise ConfigError([f"source {self.source}: {exc}"]) from None
        assert isinstance(found, model)
        return found


Normalizer = Callable[[RawRecord, NormalizerContext], ComplaintDraft]
