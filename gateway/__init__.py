"""Minsheng Gateway (民声网关): the core — schema, case codes, config, pipeline, store,
outbox, sinks, server and CLI."""

__version__ = "0.1.0"
