"""Minsheng Gateway (民声网关): the core, in subpackages by concern — model, support,
store, dedup, intake, delivery, ops, server, cli (docs/architecture.md). It knows the
channels (``adapters``) and formats (``normalizers``) only by name, through the registry."""

__version__ = "0.1.0"
