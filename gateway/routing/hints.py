"""What the intake calls: a complaint's classification, routing and due date, each a
hint, and whether a confidential rule makes the case confidential. A failure in any of
them is logged, counted (``failures``, shown in /metrics; the confidential rules count as
``routing``) and leaves that hint out; it never raises into intake."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from gateway.model.schema import Classification, ComplaintDraft, RoutingInfo
from gateway.routing.deadlines import due_at
from gateway.routing.rules import Matter, RuleSet, load_rules
from gateway.routing.taxonomy import Taxonomy, load_taxonomy
from gateway.support.logging import get_logger
from gateway.support.routing_config import ClassifierConfig, DeadlinesConfig

if TYPE_CHECKING:  # scikit-learn is imported only when a model is configured
    from gateway.routing.classifier import TrainedModel

log = get_logger("gateway.routing")
HintKind = Literal["classification", "routing", "due_at"]
HINT_KINDS: tuple[HintKind, ...] = ("classification", "routing", "due_at")


@dataclass
class RoutingHints:
    """Taxonomy, model and rules loaded once at start; ``apply`` per complaint."""

    timezone: ZoneInfo
    classifier: ClassifierConfig
    deadlines: DeadlinesConfig
    taxonomy: Taxonomy | None = None
    model: TrainedModel | None = None
    rules: RuleSet | None = None
    failures: Counter[HintKind] = field(default_factory=Counter)

    def apply(self, draft: ComplaintDraft) -> dict[str, Any]:
        """The hint fields for the complaint of ``draft`` (only those that are known)."""
        hints: dict[str, Any] = {}
        classification = self._guard("classification", self.classify, draft)
        if classification is not None:
            hints["classification"] = classification
        code = classification.code if classification is not None else draft.category_hint
        matter = _matter(draft, code)  # what both kinds of rule look at, built once
        routing = self._guard("routing", self.route, matter)
        if routing is not None:
            hints["routing"] = routing
        due = self._guard("due_at", self.due, draft, code)
        if due is not None:
            hints["due_at"] = due
        if not draft.confidential and self._guard("routing", self.confidential, matter):
            hints["confidential"] = True
        return hints

    def _guard(self, kind: HintKind, step: Any, *args: Any) -> Any:
        try:
            return step(*args)
        except Exception as exc:  # a hint must never stop a case from being filed
            self.failures[kind] += 1
            log.warning("routing_hint_failed", hint=kind, error=type(exc).__name__)
            return None

    def classify(self, draft: ComplaintDraft) -> Classification | None:
        if self.model is None or self.taxonomy is None:
            return None
        limit = self.classifier.max_chars
        label, confidence = self.model.predict(draft.subject[:limit], draft.body[:limit])
        code = self.taxonomy.resolve(label)
        if code is None or confidence < self.classifier.threshold:
            return None
        return Classification(code=code, path=self.taxonomy.path(code),
                              confidence=round(confidence, 4), model=self.model.name)

    def route(self, matter: Matter) -> RoutingInfo | None:
        if self.rules is None:
            return None
        return self.rules.route(matter)

    def confidential(self, matter: Matter) -> bool:
        """Whether a confidential rule of the rules file holds for ``matter``."""
        return self.rules is not None and self.rules.confidential(matter) is not None

    def due(self, draft: ComplaintDraft, code: str | None) -> datetime | None:
        """Working days of the class's service level (default: ``default_working_days``)."""
        settings = self.deadlines
        if not settings.enabled:
            return None
        days = settings.default_working_days
        level = None
        if self.taxonomy is not None and code is not None and code in self.taxonomy.classes:
            level = self.taxonomy.service_level(code)
        if level is not None:
            days = settings.service_levels.get(level, days)
        due = due_at(draft.received_at, days, self.timezone, settings.end_of_day)
        return due.astimezone(UTC)  # the complaint's times are UTC


def _matter(draft: ComplaintDraft, code: str | None) -> Matter:
    """What the rules look at of ``draft``, with its class ``code``."""
    location = draft.location
    return Matter(
        class_code=code, subject=draft.subject, body=draft.body,
        address=location.address if location else None,
        district=location.district_code if location else None, channel=draft.channel,
    )


def load_hints(taxonomy_path: Path | None, classifier: ClassifierConfig,
               rules_path: Path | None, deadlines: DeadlinesConfig,
               timezone: ZoneInfo) -> RoutingHints:
    """Load what the config names, once; a missing or broken file is a ConfigError at
    start, not a failure per complaint."""
    taxonomy = load_taxonomy(taxonomy_path) if taxonomy_path else None
    model = None
    if classifier.model:  # scikit-learn and skops take ~1 s to import: only when used
        from gateway.routing.classifier import load_model

        model = load_model(classifier.model)
    rules = load_rules(rules_path, taxonomy) if rules_path else None
    return RoutingHints(timezone=timezone, classifier=classifier, deadlines=deadlines,
                        taxonomy=taxonomy, model=model, rules=rules)
