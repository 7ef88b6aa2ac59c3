"""Config: environment expansion, secrets, and every error reported at once with its place."""

from __future__ import annotations

import ipaddress
import uuid
from pathlib import Path
from typing import Any

import pytest

import gateway.support.logging
from gateway.model.errors import ConfigError
from gateway.support import registry
from gateway.support.config import GatewayConfig, load_config, parse_config
from gateway.support.logging import mask_text
from tests.conftest import TEST_PRIVACY

KNOWN_ADAPTERS = ", ".join(registry.names("adapter"))
KNOWN_FORMATS = ", ".join(registry.names("normalizer"))
KNOWN_SINKS = "citizen_email, citizen_sms, http, jsonl, kafka, open311"

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "gateway.yaml"
WEB = {"name": "web", "adapter": "web_mailbox"}
FILE_SINK = {"name": "file", "kind": "jsonl", "path": "var/cases.jsonl"}


@pytest.fixture(autouse=True)
def own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value read from the environment is registered as a secret, process-wide (an
    address like 127.0.0.1 too): keep this module's registrations to itself."""
    monkeypatch.setattr(gateway.support.logging, "_SECRETS", set())


def errors_of(raw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert str(info.value).startswith("invalid configuration:\n")
    for line in info.value.errors:
        assert f"  - {line}" in str(info.value)
    return info.value.errors


def env_name() -> str:
    return f"MINSHENG_TEST_{uuid.uuid4().hex.upper()}"


# --- the shipped file and defaults -------------------------------------------------------

def test_shipped_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINSHENG_API_TOKEN", raising=False)
    config = load_config(SHIPPED)
    assert config.region_code == "CY"
    assert config.server.host == "127.0.0.1" and config.server.port == 8080
    assert [(s.name, s.adapter) for s in config.sources] == [
        ("web", "web_mailbox"), ("hotline", "cdr_webhook")]
    assert config.source("web").options == {
        "max_attachments": 5, "max_attachment_mb": 10,
        "rate_limit": {"per_minute": 30, "burst": 10}}
    assert [(s.name, s.kind) for s in config.sinks] == [("file", "jsonl")]
    assert config.api.token is None  # ${MINSHENG_API_TOKEN:-} with nothing set: disabled
    assert str(config.tz) == "Asia/Shanghai"


def test_empty_config_is_all_defaults() -> None:
    config = parse_config(None)
    assert config == GatewayConfig()
    assert config.store.url == "sqlite:///var/gateway.db"
    assert config.attachments_dir == Path("var/attachments")


def test_outbox_retention_default_and_keep_forever() -> None:
    assert GatewayConfig().store.outbox_retention_days == 7
    assert GatewayConfig().store.outbox_retention_s == 7 * 86400
    half = parse_config({"store": {"outbox_retention_days": 0.5}})
    assert half.store.outbox_retention_s == 43200
    for forever in (0, None):
        config = parse_config({"store": {"outbox_retention_days": forever}})
        assert config.store.outbox_retention_s is None


@pytest.mark.parametrize(("days", "expected"), [
    (-1, "store.outbox_retention_days: must be 0 or more days "
         "(0 or null: keep delivered entries forever)"),
    ("a week", "store.outbox_retention_days: not a number"),
    (float("nan"), "store.outbox_retention_days: Input should be a finite number"),
])
def test_outbox_retention_must_be_days(days: Any, expected: str) -> None:
    assert errors_of({"store": {"outbox_retention_days": days}}) == [expected]


def test_source_lookup_by_name() -> None:
    config = parse_config({"sources": [WEB]})
    assert config.source("web").adapter == "web_mailbox"
    with pytest.raises(KeyError):
        config.source("mail")


# --- ${VAR} and ${VAR:-default} ----------------------------------------------------------

def test_env_var_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    name = env_name()
    monkeypatch.setenv(name, "postgresql://gw:pw@127.0.0.1:5432/gw")
    config = parse_config({"store": {"url": f"${{{name}}}"}, "privacy": TEST_PRIVACY})
    assert config.store.url == "postgresql://gw:pw@127.0.0.1:5432/gw"


def test_several_references_in_one_value(monkeypatch: pytest.MonkeyPatch) -> None:
    host, port = env_name(), env_name()
    monkeypatch.setenv(host, "127.0.0.1")
    monkeypatch.setenv(port, "9090")
    config = parse_config({"server": {"listen": f"${{{host}}}:${{{port}}}"}})
    assert config.server.listen == "127.0.0.1:9090"


def test_default_is_used_when_unset_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    name = env_name()
    raw = {"server": {"listen": f"${{{name}:-127.0.0.1:8181}}"}}
    assert parse_config(raw).server.port == 8181
    monkeypatch.setenv(name, "")
    assert parse_config(raw).server.port == 8181
    monkeypatch.setenv(name, "127.0.0.1:8282")
    assert parse_config(raw).server.port == 8282


def test_empty_default_leaves_the_token_unset() -> None:
    assert parse_config({"api": {"token": f"${{{env_name()}:-}}"}}).api.token is None


def test_env_expansion_reaches_plugin_options(monkeypatch: pytest.MonkeyPatch) -> None:
    name = env_name()
    monkeypatch.setenv(name, "12.5")
    config = parse_config({"sources": [{**WEB, "max_attachment_mb": f"${{{name}}}"}]})
    assert config.source("web").options["max_attachment_mb"] == "12.5"


def test_missing_env_var_is_reported_with_its_path() -> None:
    a, b, c = env_name(), env_name(), env_name()
    errors = errors_of({
        "store": {"url": f"${{{a}}}"},
        "sources": [WEB, {**WEB, "name": "web2", "token": f"${{{b}}}"}],
        "sinks": [{"name": "platform", "kind": "http", "url": f"${{{c}}}"}],
    })
    assert errors == [
        f"store.url: environment variable {a} is not set",
        f"sources[1] (name=web2): token: environment variable {b} is not set",
        f"sinks[0] (name=platform): url: environment variable {c} is not set",
    ]  # and no second complaint about the empty value left in their place


def test_env_values_are_registered_as_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    token, secret = f"tok-{uuid.uuid4().hex}", f"hmac-{uuid.uuid4().hex}"
    tname, sname = env_name(), env_name()
    monkeypatch.setenv(tname, token)
    monkeypatch.setenv(sname, secret)
    config = parse_config({
        "api": {"token": f"${{{tname}}}"},
        "sinks": [{"name": "platform", "kind": "http", "url": "https://cases.example.gov.cn/",
                   "secret": f"${{{sname}}}"}],
    })
    assert config.api.token is not None and config.api.token.get_secret_value() == token
    assert token not in repr(config) and token not in str(config.model_dump())
    line = f"auth=Bearer {token} signature-key={secret} header={{'k': '{secret}'}}"
    masked = mask_text(line)
    assert token not in masked and secret not in masked
    assert masked == "auth=Bearer *** signature-key=*** header={'k': '***'}"


# --- every error at once, each with its place --------------------------------------------

def test_unknown_adapter_sink_and_format_names() -> None:
    errors = errors_of({
        "sources": [{"name": "mail", "adapter": "imap_emial"},
                    {**WEB, "format": "web_from"}],
        "sinks": [{"name": "platform", "kind": "kafak"}],
    })
    assert errors == [
        f"sources[0] (name=mail): unknown adapter 'imap_emial' (known: {KNOWN_ADAPTERS})",
        f"sources[1] (name=web): unknown normalizer 'web_from' (known: {KNOWN_FORMATS})",
        f"sinks[0] (name=platform): unknown sink 'kafak' (known: {KNOWN_SINKS})",
    ]


def test_duplicate_names() -> None:
    errors = errors_of({"sources": [WEB, {**WEB, "max_attachments": 2}],
                        "sinks": [FILE_SINK, FILE_SINK]})
    assert errors == ["sources[1] (name=web): name: used twice",
                      "sinks[1] (name=file): name: used twice"]


def test_a_source_and_a_sink_may_share_a_name() -> None:
    parse_config({"sources": [{**WEB, "name": "file"}], "sinks": [FILE_SINK]})


@pytest.mark.parametrize(("raw", "expected"), [
    ({"regoin_code": "CY"}, "regoin_code: unknown key"),
    ({"server": {"listen": "127.0.0.1:1", "port": 8080}}, "server.port: unknown key"),
    ({"sources": [{**WEB, "max_attachment": 3}]}, "sources[0] (name=web): max_attachment: "
                                                  "unknown key"),
    ({"sinks": [{**FILE_SINK, "retry": {"max_attempt": 3}}]},
     "sinks[0] (name=file): retry.max_attempt: unknown key"),
])
def test_unknown_keys(raw: dict[str, Any], expected: str) -> None:
    assert errors_of(raw) == [expected]


@pytest.mark.parametrize("listen", ["8080", "localhost", "localhost:", ":8080", "host:0",
                                    "host:65536", "host:http", "127.0.0.1:80 80", ""])
def test_bad_listen(listen: str) -> None:
    assert errors_of({"server": {"listen": listen}}) == [
        "server.listen: must be HOST:PORT, e.g. 127.0.0.1:8080"]


@pytest.mark.parametrize(("listen", "host", "port"), [
    ("0.0.0.0:8080", "0.0.0.0", 8080), ("[::1]:9000", "::1", 9000),
    ("gateway.local:65535", "gateway.local", 65535),
])
def test_good_listen(listen: str, host: str, port: int) -> None:
    # Off loopback, ops without a token needs the explicit opt-in (test_config_checks.py).
    server = parse_config({"server": {"listen": listen}, "allow_unauthenticated": ["ops"]}).server
    assert (server.host, server.port) == (host, port)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Asia", "", "../../etc/passwd",
                                  "/etc/localtime", "Asia/Beijing"])
def test_bad_timezone(zone: str) -> None:
    assert errors_of({"timezone": zone}) == [f"timezone: unknown time zone {zone!r}"]


def test_good_timezone() -> None:
    assert str(parse_config({"timezone": "Asia/Urumqi"}).tz) == "Asia/Urumqi"


@pytest.mark.parametrize(("raw", "expected"), [
    ({"region_code": "cy"}, "region_code: String should match pattern '^[A-Z]{1,8}$'"),
    ({"store": {"url": "mysql://x"}}, "store.url: must start with sqlite:/// or postgresql://"),
    ({"log": {"level": "verbose"}}, "log.level: String should match pattern "
                                    "'^(debug|info|warning|error)$'"),
    ({"sources": {"web": WEB}}, "sources: not a list"),
    ({"sources": ["web"]}, "sources[0]: not a mapping"),
    ({"sources": [{"adapter": "web_mailbox"}]}, "sources[0]: name: required"),
    ({"sources": [{**WEB, "name": "Web Box"}]},
     "sources[0] (name=Web Box): name: String should match pattern '^[a-z0-9][a-z0-9_-]{0,62}$'"),
    ({"sinks": [{**FILE_SINK, "batch_size": "many"}]},
     "sinks[0] (name=file): batch_size: not a whole number"),
    ({"sinks": [{"name": "file", "kind": "jsonl"}]}, "sinks[0] (name=file): path: required"),
    ({"sources": [{**WEB, "enabled": "maybe"}]},
     "sources[0] (name=web): enabled: not true or false"),
])
def test_one_error_each(raw: dict[str, Any], expected: str) -> None:
    assert errors_of(raw) == [expected]


def test_every_error_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = env_name()
    errors = errors_of({
        "timezone": "Asia/Beijing",
        "server": {"listen": "8080"},
        "surprise": True,
        "sources": [
            {"name": "intake", "adapter": "web_mailbox", "token": f"${{{missing}}}"},
            {"name": "web", "adapter": "web_mailbox", "max_attachment_mb": "ten"},
            {"name": "web", "adapter": "carrier_pigeon"},
        ],
        "sinks": [{"name": "platform", "kind": "http", "url": "ftp://cases"},
                  {"name": "file", "kind": "smoke_signal"}],
    })
    assert sorted(errors) == sorted([
        f"sources[0] (name=intake): token: environment variable {missing} is not set",
        "timezone: unknown time zone 'Asia/Beijing'",
        "server.listen: must be HOST:PORT, e.g. 127.0.0.1:8080",
        "surprise: unknown key",
        "sources[1] (name=web): max_attachment_mb: not a number",
        "sources[2] (name=web): name: used twice",
        f"sources[2] (name=web): unknown adapter 'carrier_pigeon' (known: {KNOWN_ADAPTERS})",
        "sinks[0] (name=platform): url: String should match pattern '^https?://'",
        f"sinks[1] (name=file): unknown sink 'smoke_signal' (known: {KNOWN_SINKS})",
    ])


def test_plugin_options_are_checked_beside_a_broken_sibling() -> None:
    """A source that is itself broken does not hide the options errors of the others."""
    errors = errors_of({"sources": [{"adapter": "web_mailbox"},
                                    {**WEB, "max_attachments": -1}]})
    assert errors == ["sources[0]: name: required",
                      "sources[1] (name=web): max_attachments: Input should be greater than or "
                      "equal to 0"]


# --- files -------------------------------------------------------------------------------

def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.errors == [f"{tmp_path / 'nope.yaml'}: cannot read: No such file or "
                                 "directory"]


def test_load_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sources:\n  - name: web\n   adapter: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (error,) = info.value.errors
    assert error.startswith(f"{path}: not valid YAML:")


def test_load_top_level_list(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- name: web\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == [f"{path}: the top level must be a mapping"]


def test_load_empty_file_and_utf8_comments(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("# 民声网关 默认配置\nregion_code: QD  # 青岛\n", encoding="utf-8")
    assert load_config(path).region_code == "QD"
    path.write_text("", encoding="utf-8")
    assert load_config(path) == GatewayConfig()


def test_the_container_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/docker-gateway.yaml is the image's default config: it must stay valid, and
    its web mailbox believes X-Forwarded-For from the Docker bridge."""
    monkeypatch.delenv("MINSHENG_API_TOKEN", raising=False)
    config = load_config(SHIPPED.parents[1] / "scripts" / "docker-gateway.yaml")
    assert config.server.host == "0.0.0.0" and config.server.port == 8080
    from adapters.web_mailbox import WebMailboxOptions

    limits = WebMailboxOptions.model_validate(config.source("web").options).rate_limit
    assert limits is not None
    bridge = ipaddress.ip_address("172.17.0.1")
    assert any(bridge in n for n in limits.trusted_proxies)
    assert not any(bridge.version == n.version and bridge in n for n in limits.exempt)


def test_server_workers_default_auto_and_bounds() -> None:
    """``server.workers``: 1 by default (one process), ``auto`` the usable cores, a count
    1–256; anything else is an error naming the key."""
    import os

    assert parse_config(None).server.worker_count == 1
    assert parse_config({"server": {"workers": 3}}).server.worker_count == 3
    assert parse_config({"server": {"workers": "auto"}}).server.worker_count == len(
        os.sched_getaffinity(0))
    for bad in (0, 257, "many", 1.5):
        with pytest.raises(ConfigError) as info:
            parse_config({"server": {"workers": bad}})
        assert "server.workers" in str(info.value), bad
