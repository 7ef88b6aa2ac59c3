"""How the config loader and its checks name a place in the config file and tell a
secret key: shared by gateway/support/config.py (errors) and config_checks.py (warnings),
so neither imports the other."""

from __future__ import annotations

from typing import Any

Loc = tuple[str | int, ...]


def item_prefix(section: str, index: int, item: Any) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f"{section}[{index}] (name={name})" if name else f"{section}[{index}]"


def config_location(loc: Loc, raw: dict[str, Any]) -> str:
    """``sources[1] (name=web): max_attachment_mb`` for a location in the config."""
    rest = list(loc)
    prefix = ""
    if len(rest) >= 2 and rest[0] in ("sources", "sinks") and isinstance(rest[1], int):
        section = raw.get(str(rest[0]))
        item = section[rest[1]] if isinstance(section, list) and rest[1] < len(section) else None
        prefix = item_prefix(str(rest[0]), rest[1], item)
        rest = rest[2:]
    return ": ".join(p for p in (prefix, ".".join(str(x) for x in rest)) if p)


_SECRET_WORDS = ("token", "secret", "password", "passwd", "credential")


def is_secret_key(key: str) -> bool:
    """A config key whose value is a secret: ``token``, ``auth_token``, ``password``,
    ``secret``, ``api_key``…: masked in logs, and expected as ``${VAR}`` in the file."""
    key = key.lower()
    return any(word in key for word in _SECRET_WORDS) or key == "key" or key.endswith("_key")
