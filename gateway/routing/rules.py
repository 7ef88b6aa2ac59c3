"""Routing rules: which department answers a matter. YAML, evaluated in order; the first
rule whose every condition holds decides. Conditions: class (the class or any of its
descendants), keywords (any of them in subject or body), a regular expression on subject
and body, address patterns, district codes, channels. With no rule matching, the
taxonomy's own department of the class (inherited from its ancestors) answers.

The same file may list ``confidential`` rules: the same conditions, no department; a
matter that any of them holds for is a confidential case (the reporter's identity is
masked in outputs, docs/personal-data.md#confidential-cases). They are evaluated
independently of the routing rules' first-match order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.model.errors import ConfigError
from gateway.model.schema import Channel, RoutingInfo
from gateway.routing.taxonomy import Taxonomy

Priority = Literal["low", "normal", "high", "urgent"]
R = TypeVar("R", bound="Conditional")
TAXONOMY_RULE = "taxonomy"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Conditions(_Strict):
    classes: list[str] = Field(default_factory=list, alias="class")
    keywords: list[str] = Field(default_factory=list)
    regex: str | None = None
    address: list[str] = Field(default_factory=list)
    district: list[str] = Field(default_factory=list)
    channel: list[Channel] = Field(default_factory=list)

    # The expressions compiled once, on first use (``re.search(pattern, …)`` would look
    # each up in ``re``'s cache on every call, several times a submission). Plain cached
    # properties: pydantic's private attributes cost a ``__getattr__`` on every read.
    @cached_property
    def compiled_regex(self) -> re.Pattern[str] | None:
        return re.compile(self.regex) if self.regex is not None else None

    @cached_property
    def compiled_address(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p) for p in self.address)

    @field_validator("classes", "keywords", "address", "district", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            _compile(value)
        return value

    @field_validator("address")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            _compile(pattern)
        return value


def _compile(pattern: str) -> None:
    """``re.error`` is no ValueError: say it as one, so the loader names the rule."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc})") from None


class Conditional(_Strict):
    """A named set of conditions: what a confidential rule is, and a routing rule's base."""

    name: str = Field(min_length=1, max_length=100)
    when: Conditions


class Rule(Conditional):
    department: str = Field(min_length=1)
    priority: Priority | None = None


@dataclass(frozen=True)
class Matter:
    """What the rules look at: one complaint's class, text, place and channel."""

    class_code: str | None
    subject: str
    body: str
    address: str | None = None
    district: str | None = None
    channel: Channel | None = None

    @cached_property
    def text(self) -> str:
        """Subject and body, as keywords and expressions are looked for in them (once per
        matter, not once per rule)."""
        return f"{self.subject}\n{self.body}"


@dataclass(frozen=True)
class Check:
    """One condition of one rule: whether it held, and why in words."""

    condition: str
    held: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    rule: str
    matched: bool
    checks: list[Check]


class RuleSet:
    def __init__(self, rules: list[Rule], taxonomy: Taxonomy | None,
                 confidential: list[Conditional] | None = None) -> None:
        self.rules = rules
        self.taxonomy = taxonomy
        self.confidential_rules = confidential or []

    def confidential(self, matter: Matter) -> str | None:
        """The name of the first confidential rule that holds for ``matter``, or None."""
        return next((r.name for r in self.confidential_rules if self.holds(r, matter)), None)

    def route(self, matter: Matter) -> RoutingInfo | None:
        """The first matching rule's department, else the class's own department."""
        for rule in self.rules:
            if not self.holds(rule, matter):
                continue
            checks = self.check(rule, matter)  # the reason, said for the rule that fired
            if all(c.held for c in checks):
                reason = "; ".join(c.detail for c in checks) or "无条件 no conditions"
                return RoutingInfo(department=rule.department, rule=rule.name, reason=reason,
                                   priority=rule.priority)
        return self._by_taxonomy(matter.class_code)

    def explain(self, matter: Matter) -> list[Verdict]:
        """Every rule with each of its conditions, in evaluation order."""
        verdicts = []
        for rule in self.rules:
            checks = self.check(rule, matter)
            verdicts.append(Verdict(rule.name, all(c.held for c in checks), checks))
        return verdicts

    def _by_taxonomy(self, code: str | None) -> RoutingInfo | None:
        if code is None or self.taxonomy is None or code not in self.taxonomy.classes:
            return None
        department = self.taxonomy.department(code)
        if department is None:
            return None
        return RoutingInfo(department=department, rule=TAXONOMY_RULE,
                           reason=f"分类 class {code} 的主管部门 the taxonomy's department")

    def holds(self, rule: Conditional, matter: Matter) -> bool:
        """Whether every condition of ``rule`` holds, cheapest first and stopping at the
        first that fails: what intake asks of every rule (``check`` also says why, which
        costs a sentence per condition and is only wanted for the rule that fired)."""
        when = rule.when
        if when.channel and matter.channel not in when.channel:
            return False
        if when.district and matter.district not in when.district:
            return False
        if when.classes and not self._within(when.classes, matter.class_code):
            return False
        if when.keywords:
            text = matter.text
            if not any(k in text for k in when.keywords):
                return False
        regex = when.compiled_regex
        if regex is not None and regex.search(matter.text) is None:
            return False
        address = matter.address or ""
        return not when.address or any(p.search(address) for p in when.compiled_address)

    def check(self, rule: Conditional, matter: Matter) -> list[Check]:
        when = rule.when
        text = matter.text
        checks: list[Check] = []
        if when.classes:
            checks.append(self._class_check(when.classes, matter.class_code))
        if when.keywords:
            found = [k for k in when.keywords if k in text]
            checks.append(Check("keywords", bool(found), f"关键词 keywords {found or when.keywords}"
                                + (" 命中 found" if found else " 未命中 not found")))
        regex = when.compiled_regex
        if regex is not None:
            hit = regex.search(text)
            checks.append(Check("regex", hit is not None, f"正则 regex /{when.regex}/ "
                                + (f"匹配 matched {hit.group(0)!r}" if hit
                                   else "未匹配 did not match")))
        if when.address:
            address = matter.address or ""
            held = any(p.search(address) for p in when.compiled_address)
            checks.append(Check("address", held, "地址 address "
                                f"{'匹配 matches' if held else '不匹配 misses'} {when.address}"))
        if when.district:
            held = matter.district in when.district
            checks.append(Check("district", held, f"区域 district {matter.district} "
                                f"{'属于 in' if held else '不属于 not in'} {when.district}"))
        if when.channel:
            held = matter.channel in when.channel
            checks.append(Check("channel", held, f"渠道 channel {matter.channel} "
                                f"{'属于 in' if held else '不属于 not in'} {when.channel}"))
        return checks

    def _within(self, wanted: list[str], code: str | None) -> bool:
        """Whether class ``code`` is one of ``wanted`` or below one."""
        taxonomy = self.taxonomy
        return (taxonomy is not None and code is not None and code in taxonomy.classes
                and any(taxonomy.is_within(code, w) for w in wanted))

    def _class_check(self, wanted: list[str], code: str | None) -> Check:
        held = self._within(wanted, code)
        return Check("class", held, f"分类 class {code} "
                     f"{'属于 within' if held else '不属于 not within'} {wanted}")


def load_rules(path: Path, taxonomy: Taxonomy | None) -> RuleSet:
    """The rules of ``path``; a bad file is a ConfigError naming the rule."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"routing rules {path}: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"routing rules {path}: not valid YAML ({exc})"]) from None
    lists = ("rules", "confidential")
    if (not isinstance(data, dict) or not any(k in data for k in lists)
            or not all(isinstance(data.get(k, []), list) for k in lists)):
        raise ConfigError([f"routing rules {path}: expected a mapping with a 'rules' list "
                           "and/or a 'confidential' list"])
    rules = _validated(path, "rules", data.get("rules") or [], Rule)
    confidential = _validated(path, "confidential", data.get("confidential") or [], Conditional)
    for found in (rules, confidential):
        names = [r.name for r in found]
        if len(set(names)) != len(names):
            raise ConfigError([f"routing rules {path}: rule names must be unique"])
    return RuleSet(rules, taxonomy, confidential)


def _validated(path: Path, key: str, items: list[Any], model: type[R]) -> list[R]:
    """Each item of the ``key`` list as ``model``; the first bad one names its place."""
    found = []
    for index, item in enumerate(items):
        try:
            found.append(model.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError([f"routing rules {path}: {key}[{index}] {where}: "
                              f"{first['msg']}"]) from None
    return found
