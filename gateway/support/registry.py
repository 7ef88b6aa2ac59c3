"""Adapters, normalizers and sinks by name, imported lazily.

The built-in table below has the shape of an entry point (``"module:attribute"``);
third parties add theirs under the entry-point groups ``minsheng.adapters``,
``minsheng.normalizers`` and ``minsheng.sinks``. Config says ``adapter: web_mailbox``
and nothing imports a concrete adapter by hand.

The registry sits low (config validation asks it for each plugin's ``Options``), so it
names no type of the layers above it: ``adapter_class`` and ``sink_class`` return a class
the caller annotates (``AdapterClass``, ``SinkClass``) where it knows the layer.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from gateway.model.normalize import Normalizer

ADAPTERS: dict[str, str] = {
    "web_mailbox": "adapters.web_mailbox:WebMailboxSource",
    "imap_email": "adapters.imap_email:ImapEmailSource",
    "cdr_webhook": "adapters.cdr_webhook:CdrWebhookSource",
    "feeds": "adapters.opinion.feeds:FeedSource",
    "html_pages": "adapters.opinion.html_pages:HtmlPagesSource",
}

NORMALIZERS: dict[str, str] = {
    "web_form": "normalizers.web_form:normalize",
    "email": "normalizers.email:normalize",
    "generic_json": "normalizers.hotline.generic_json:normalize",
    "freeswitch_json": "normalizers.hotline.freeswitch_json:normalize",
    "zammad_cti": "normalizers.hotline.zammad_cti:normalize",
    "twilio": "normalizers.hotline.twilio:normalize",
    "call_notes": "normalizers.hotline.call_notes:normalize",
    "feed_entry": "normalizers.opinion.feed_entry:normalize",
    "html_page": "normalizers.opinion.html_page:normalize",
}

SINKS: dict[str, str] = {
    "http": "gateway.delivery.sinks.http:HttpSink",
    "jsonl": "gateway.delivery.sinks.jsonl:JsonlSink",
    "kafka": "gateway.delivery.sinks.kafka:KafkaSink",
    "open311": "gateway.delivery.sinks.open311:Open311Sink",
    "citizen_email": "gateway.delivery.citizen.email_sink:CitizenEmailSink",
    "citizen_sms": "gateway.delivery.citizen.sms_sink:CitizenSmsSink",
}


@cache
def _table(group: str, builtin: tuple[tuple[str, str], ...]) -> dict[str, str]:
    table = dict(builtin)
    for ep in entry_points(group=group):
        table.setdefault(ep.name, ep.value)
    return table


def _load(kind: str, group: str, builtin: dict[str, str], name: str) -> Any:
    table = _table(group, tuple(sorted(builtin.items())))
    target = table.get(name)
    if target is None:
        known = ", ".join(sorted(table))
        raise LookupError(f"unknown {kind} {name!r} (known: {known})")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def names(kind: str) -> list[str]:
    builtin, group = {
        "adapter": (ADAPTERS, "minsheng.adapters"),
        "normalizer": (NORMALIZERS, "minsheng.normalizers"),
        "sink": (SINKS, "minsheng.sinks"),
    }[kind]
    return sorted(_table(group, tuple(sorted(builtin.items()))))


def adapter_class(name: str) -> type[Any]:
    """The adapter class registered as ``name`` (a ``gateway.intake.sources.Adapter``)."""
    cls: type[Any] = _load("adapter", "minsheng.adapters", ADAPTERS, name)
    return cls


def normalizer(name: str) -> Normalizer:
    fn: Normalizer = _load("normalizer", "minsheng.normalizers", NORMALIZERS, name)
    return fn


def sink_class(name: str) -> type[Any]:
    """The sink class registered as ``name`` (a ``gateway.delivery.sinks.base.Sink``)."""
    cls: type[Any] = _load("sink", "minsheng.sinks", SINKS, name)
    return cls


def options_model(kind: str, name: str) -> type[BaseModel]:
    """The ``Options`` model of the adapter or sink registered as ``name``."""
    cls = adapter_class(name) if kind == "adapter" else sink_class(name)
    model: type[BaseModel] = cls.Options
    return model
