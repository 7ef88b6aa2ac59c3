"""Off loopback, nothing answers the network without credentials unless the config says
so in ``allow_unauthenticated``; secrets written in clear in the file are warned about.
Through ``parse_config`` (what ``run`` and ``check-config`` both load) and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.model.errors import ConfigError
from gateway.support.config import parse_config
from gateway.support.config_checks import clear_secret_warnings, is_loopback_host
from tests.conftest import raw_config
from tests.procs import ROOT, run_cli, write_config

OPEN_HOTLINE = {"name": "hotline", "adapter": "cdr_webhook", "auth": {"scheme": "none"}}
BEARER = {"scheme": "bearer", "token": "${IVR_TOKEN:-ivr}"}


def shipped(listen: str, **overrides: Any) -> dict[str, Any]:
    """config/gateway.yaml (a web mailbox, a hotline with auth scheme none, ops without
    a token) listening on ``listen``."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text("utf-8"))
    raw["server"]["listen"] = listen
    raw.update(overrides)
    return raw


def errors_of(raw: dict[str, Any]) -> list[str]:
    try:
        parse_config(raw)
    except ConfigError as exc:
        return exc.errors
    return []


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "127.0.0.2:8080", "[::1]:8080",
                                    "localhost:8080"])
def test_on_loopback_the_shipped_config_is_accepted(listen: str) -> None:
    assert errors_of(shipped(listen)) == []


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "[::]:8080", "192.0.2.10:8080",
                                    "gw.example.gov.cn:8080"])
def test_off_loopback_an_open_hotline_and_ops_without_token_are_refused(listen: str) -> None:
    errors = errors_of(shipped(listen))
    assert len(errors) == 2, errors
    hotline, ops = errors
    assert hotline.startswith("sources[1] (name=hotline): auth scheme none lets anyone post "
                              f"call records and agents' notes while listening on {listen}")
    assert "list hotline in allow_unauthenticated" in hotline
    assert ops.startswith(f"ops: no token while listening on {listen}: set ops.token")
    assert "docs/security.md" in hotline and "docs/security.md" in ops


def test_an_explicit_opt_in_accepts_each_one() -> None:
    assert errors_of(shipped("0.0.0.0:8080", allow_unauthenticated=["hotline", "ops"])) == []
    (left,) = errors_of(shipped("0.0.0.0:8080", allow_unauthenticated=["ops"]))
    assert left.startswith("sources[1] (name=hotline)")


def test_a_token_or_credentials_are_what_is_asked_for(tmp_path: Path) -> None:
    """The web mailbox is public by design (no token needed); a hotline with credentials
    and ops with a token pass; notes left open are named on their own."""
    raw = raw_config(tmp_path, "sqlite:///x.db", ops={"token": "${OPS:-ops-secret}"},
                     sources=[{"name": "web", "adapter": "web_mailbox"},
                              {**OPEN_HOTLINE, "auth": BEARER}])
    raw["server"]["listen"] = "0.0.0.0:8080"
    assert errors_of(raw) == []
    raw["sources"][1]["notes_auth"] = {"scheme": "none"}
    (error,) = errors_of(raw)
    assert "auth scheme none lets anyone post agents' notes while" in error
    raw["sources"][1]["enabled"] = False  # a disabled source answers nobody
    assert errors_of(raw) == []


def test_unknown_names_in_the_opt_in_are_errors() -> None:
    errors = errors_of(shipped("127.0.0.1:8080", allow_unauthenticated=["ops", "hotlin"]))
    assert errors == ["allow_unauthenticated: 'hotlin' is neither ops nor a source name"]


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("::1", True), ("LOCALHOST", True), ("0.0.0.0", False),
    ("::", False), ("10.0.0.1", False), ("gateway.internal", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_secrets_in_clear_are_warned_about_by_location() -> None:
    raw = {
        "store": {"url": "postgresql://gw:hunter2@db/minsheng"},
        "api": {"token": "literal"},
        "ops": {"token": "${MINSHENG_OPS_TOKEN}"},
        "sources": [
            {"name": "hotline", "adapter": "cdr_webhook",
             "auth": {"scheme": "basic", "username": "fs", "password": "pw"},
             "notes_auth": {"scheme": "hmac", "secret": "${DESK:-}"}, "ops_token": ""},
            {"name": "mail", "adapter": "imap_email", "password": "${IMAP_PASSWORD}",
             "api_key": "k-123"},
        ],
        "sinks": [{"name": "p", "kind": "http", "url": "https://cases.example/api",
                   "secret": "s3cret"},
                  {"name": "q", "kind": "http", "url": "https://u:${PW}@cases.example/"}],
    }
    assert clear_secret_warnings(raw) == [
        "store.url: a password written in clear in the URL; put the URL (or the password) "
        "in the environment: ${VAR}",
        "api.token: a secret written in clear in the file; put it in the environment and "
        "write token: ${VAR}",
        "sources[0] (name=hotline): auth.password: a secret written in clear in the file; "
        "put it in the environment and write password: ${VAR}",
        "sources[1] (name=mail): api_key: a secret written in clear in the file; put it in "
        "the environment and write api_key: ${VAR}",
        "sinks[0] (name=p): secret: a secret written in clear in the file; put it in the "
        "environment and write secret: ${VAR}",
    ]
    assert clear_secret_warnings(None) == []


def test_check_config_refuses_and_warns(tmp_path: Path) -> None:
    open_path = write_config(tmp_path / "open.yaml", shipped("0.0.0.0:8080"))
    refused = run_cli("check-config", "--config", str(open_path))
    assert refused.returncode == 2
    assert "sources[1] (name=hotline): auth scheme none" in refused.stderr
    assert "ops: no token while listening on 0.0.0.0:8080" in refused.stderr
    ran = run_cli("run", "--config", str(open_path))  # run loads the same way: no start
    assert ran.returncode == 2 and "ops: no token" in ran.stderr
    clear = shipped("127.0.0.1:8080", api={"token": "in-the-file-itself"})
    warned = run_cli("check-config", "--config", str(write_config(tmp_path / "c.yaml", clear)))
    assert warned.returncode == 0, warned.stderr
    assert warned.stderr.splitlines() == [
        "warning: api.token: a secret written in clear in the file; put it in the "
        "environment and write token: ${VAR}"]
    assert "in-the-file-itself" not in warned.stderr + warned.stdout
