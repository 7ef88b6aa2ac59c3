"""What adapters and sinks share: their options model, named once as a type parameter.

``class FeedSource(PolledAdapter[FeedOptions])`` or ``class HttpSink(Sink[HttpOptions])``:
the parameter becomes the class's ``Options`` (what config validation and
``check-config`` ask the registry for) and ``self.options`` is the item's options
validated by it, typed as the parameter.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar, cast, get_args

from pydantic import BaseModel

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class Configurable(Generic[OptionsT]):
    Options: ClassVar[type[BaseModel]]
    options: OptionsT

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):
            found = [a for a in get_args(base) if isinstance(a, type) and issubclass(a, BaseModel)]
            if found and "Options" not in cls.__dict__:
                cls.Options = found[0]

    def validated_options(self, options: Any) -> OptionsT:
        """``options`` as this class's model (a model instance passes through)."""
        return cast(OptionsT, self.Options.model_validate(options))
