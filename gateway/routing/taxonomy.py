"""The centre's classification tree: classes with code, name, parent (any depth), and per
class an optional department and service-level class, inherited from the nearest
ancestor that has one. Loaded from YAML, or from CSV either as code/name/parent columns or
as one column per level (一级分类,二级分类,三级分类, as the public 12345 data sets ship it)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.model.errors import ConfigError


class TaxonomyClass(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    parent: str | None = None
    department: str | None = None
    service_level: str | None = None


@dataclass(frozen=True)
class Taxonomy:
    """The classes by code, with lookups by name and the path from the root."""

    classes: dict[str, TaxonomyClass]

    @classmethod
    def build(cls, items: list[TaxonomyClass]) -> Taxonomy:
        """Check codes are unique, parents exist and there is no cycle."""
        classes: dict[str, TaxonomyClass] = {}
        for item in items:
            if item.code in classes:
                raise ConfigError([f"taxonomy: class code {item.code!r} appears twice"])
            classes[item.code] = item
        taxonomy = cls(classes)
        for item in items:
            if item.parent is not None and item.parent not in classes:
                raise ConfigError([f"taxonomy: {item.code}: parent {item.parent!r} is unknown"])
            taxonomy.ancestry(item.code)  # raises on a cycle
        return taxonomy

    def ancestry(self, code: str) -> list[TaxonomyClass]:
        """The class and its ancestors, nearest first."""
        chain: list[TaxonomyClass] = []
        current: str | None = code
        while current is not None:
            node = self.classes[current]
            if node in chain:
                raise ConfigError([f"taxonomy: {code}: parents form a cycle"])
            chain.append(node)
            current = node.parent
        return chain

    def path(self, code: str) -> list[str]:
        """Names from the root down to the class, e.g. ["城乡建设", "供水供电供暖"]."""
        return [node.name for node in reversed(self.ancestry(code))]

    def department(self, code: str) -> str | None:
        return next((n.department for n in self.ancestry(code) if n.department), None)

    def service_level(self, code: str) -> str | None:
        return next((n.service_level for n in self.ancestry(code) if n.service_level), None)

    def is_within(self, code: str, ancestor: str) -> bool:
        """Whether ``code`` is ``ancestor`` or one of its descendants."""
        return any(node.code == ancestor for node in self.ancestry(code))

    def subtree_names(self, code: str) -> list[str]:
        """Names of the class and all its descendants: the words a centre uses for the
        matters it files there (the classifier's prior knowledge for rare classes)."""
        return [c.name for c in self.classes.values() if self.is_within(c.code, code)]

    def priors(self, labels: set[str]) -> dict[str, str]:
        """Per label that names a class, the names below it as one text."""
        found = {label: self.resolve(label) for label in labels}
        return {label: " ".join(self.subtree_names(code))
                for label, code in found.items() if code is not None}

    def resolve(self, label: str) -> str | None:
        """The code of a class given by code or by name (a model's label may be either)."""
        if label in self.classes:
            return label
        return next((c.code for c in self.classes.values() if c.name == label), None)


def load_taxonomy(path: Path) -> Taxonomy:
    """A taxonomy from ``path`` (.yaml/.yml or .csv); every problem is a ConfigError."""
    try:
        items = _from_csv(path) if path.suffix.lower() == ".csv" else _from_yaml(path)
    except OSError as exc:
        raise ConfigError([f"taxonomy {path}: {exc.strerror or exc}"]) from None
    except ValidationError as exc:
        raise ConfigError([f"taxonomy {path}: {exc.errors()[0]['msg']}"]) from None
    except (yaml.YAMLError, csv.Error, UnicodeDecodeError) as exc:
        raise ConfigError([f"taxonomy {path}: unreadable ({exc})"]) from None
    return Taxonomy.build(items)


def _from_yaml(path: Path) -> list[TaxonomyClass]:
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise ConfigError([f"taxonomy {path}: expected a mapping with a 'classes' list"])
    return [TaxonomyClass.model_validate(item) for item in data["classes"]]


def _from_csv(path: Path) -> list[TaxonomyClass]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if {"code", "name"} <= set(header):
        return [TaxonomyClass.model_validate({k: v or None for k, v in row.items()})
                for row in rows]
    return _from_level_columns(rows, header)


def _from_level_columns(rows: list[dict[str, str]], levels: list[str]) -> list[TaxonomyClass]:
    """One column per level: each distinct path becomes a class whose code is the path
    joined by '/', so equal names under different parents stay apart."""
    items: dict[str, TaxonomyClass] = {}
    for row in rows:
        parent: str | None = None
        for level in levels:
            name = (row.get(level) or "").strip()
            if not name:
                break
            code = f"{parent}/{name}" if parent else name
            items.setdefault(code, TaxonomyClass(code=code, name=name, parent=parent))
            parent = code
    return list(items.values())
