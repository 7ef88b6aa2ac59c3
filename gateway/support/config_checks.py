"""Checks of a whole, valid config for what it exposes, beyond each key's own validity.

On a ``server.listen`` address other than loopback, a config is refused when something
answers the network without credentials: a push source that authenticates nothing (the
phone hotline with ``auth: {scheme: none}``), or the operations views without
``ops.token``. Naming it in ``allow_unauthenticated`` accepts the risk explicitly. The
web mailbox is public by design (its adapter says so, ``public_by_design``): citizens'
browsers post to it; the rate limit and the shape limits protect it, not credentials. So
is the look-up by case code (``lookup:``, gateway/server/lookup_route.py): a citizen asks
with the code and the last four digits of the phone number, the answer holds nothing
personal, and limits per client and per code bound the guessing; it is never refused here.

Secrets written in clear in the file instead of ``${VAR}`` are only warned about
(``minsheng check-config`` prints them, ``minsheng run`` logs them): the gateway works,
but the file now needs the care of a secret. docs/security.md tells the whole story.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any, Protocol

from gateway.support.config_text import config_location, is_secret_key


class _Source(Protocol):
    """What the exposure check reads of a configured source (``SourceConfig``)."""

    @property
    def name(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def adapter(self) -> str: ...
    @property
    def options(self) -> dict[str, Any]: ...


class _Server(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def listen(self) -> str: ...


class _Ops(Protocol):
    @property
    def token(self) -> object | None: ...


class ExposedConfig(Protocol):
    """What the exposure check reads of a whole config (``GatewayConfig``): a protocol,
    so this module need not import the config module that calls it."""

    @property
    def server(self) -> _Server: ...
    @property
    def ops(self) -> _Ops: ...
    @property
    def sources(self) -> Sequence[_Source]: ...
    @property
    def allow_unauthenticated(self) -> Sequence[str]: ...


OPS = "ops"  # the name of the operations views in allow_unauthenticated
DOCS = "docs/security.md#who-can-reach-what"
# A URL with a password in it: scheme://user:password@host.
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:([^/@]+)@")


def is_loopback_host(host: str) -> bool:
    """Only this machine can connect to ``host`` (a name other than localhost may
    resolve to anything, so it counts as the network)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_errors(config: ExposedConfig) -> list[str]:
    """Why ``config`` may not listen where it does; empty when it may."""
    errors = _unknown_allowed(config)
    if is_loopback_host(config.server.host):
        return errors
    allowed = set(config.allow_unauthenticated)
    listen = config.server.listen
    for index, source in enumerate(config.sources):
        if source.enabled and source.name not in allowed:
            errors.extend(f"sources[{index}] (name={source.name}): {what} while listening on "
                          f"{listen}; give it credentials ({DOCS}), or list {source.name} in "
                          "allow_unauthenticated to accept this" for what in _open_routes(source))
    if config.ops.token is None and OPS not in allowed:
        errors.append(f"ops: no token while listening on {listen}: set ops.token (e.g. "
                      "${MINSHENG_OPS_TOKEN}), or list ops in allow_unauthenticated to "
                      f"accept what ops.loopback_only alone protects ({DOCS})")
    return errors


class _Store(Protocol):
    @property
    def url(self) -> str: ...


class _Privacy(Protocol):
    @property
    def identifier_key(self) -> object | None: ...


class SharedStoreConfig(Protocol):
    """What the key check reads of a whole config (``GatewayConfig``)."""

    @property
    def store(self) -> _Store: ...
    @property
    def privacy(self) -> _Privacy: ...


def privacy_errors(config: SharedStoreConfig) -> list[str]:
    """A PostgreSQL store is shared by replicas: without ``privacy.identifier_key`` each
    would make its own local key, and a reporter keyed by one would never be found by
    another (repeats missed across replicas, and after a move to another machine)."""
    if config.store.url.startswith("sqlite:") or config.privacy.identifier_key is not None:
        return []
    return ["privacy.identifier_key: 共享的 PostgreSQL 存储必须配置统一的标识密钥，否则每个"
            "副本会各自生成本地密钥 (a PostgreSQL store is shared by replicas: set "
            "privacy.identifier_key: ${MINSHENG_IDENTIFIER_KEY}, the same on every replica, "
            "e.g. from `openssl rand -hex 32`; docs/personal-data.md#keyed-identifiers)"]


def _unknown_allowed(config: ExposedConfig) -> list[str]:
    known = {OPS, *(s.name for s in config.sources)}
    return [f"allow_unauthenticated: {name!r} is neither ops nor a source name"
            for name in config.allow_unauthenticated if name not in known]


def _open_routes(source: _Source) -> list[str]:
    """What the source's adapter says answers anyone (never for one public by design)."""
    from gateway.support import registry

    cls = registry.adapter_class(source.adapter)
    if cls.public_by_design:
        return []
    routes: list[str] = cls.open_routes(cls.Options.model_validate(source.options))
    return routes


def clear_secret_warnings(raw: Any) -> list[str]:
    """Where the (unexpanded) config file holds a secret itself instead of ``${VAR}``."""
    found: list[str] = []
    _walk(raw, (), raw if isinstance(raw, dict) else {}, found)
    return found


def _walk(value: Any, loc: tuple[str | int, ...], raw: dict[str, Any], found: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _walk(item, (*loc, str(key)), raw, found)
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, (*loc, index), raw, found)
        return
    if not isinstance(value, str) or not value or "${" in value or not loc:
        return
    key = loc[-1]
    if isinstance(key, str) and is_secret_key(key):
        found.append(f"{config_location(loc, raw)}: a secret written in clear in the file; "
                     f"put it in the environment and write {key}: ${{VAR}}")
    elif _URL_PASSWORD.match(value):
        found.append(f"{config_location(loc, raw)}: a password written in clear in the URL; "
                     "put the URL (or the password) in the environment: ${VAR}")
