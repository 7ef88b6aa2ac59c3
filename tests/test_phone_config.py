"""Phone sources in the config: the shipped default and examples pass ``check-config``;
incomplete authentication and impossible combinations are errors naming the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.model.errors import ConfigError
from gateway.server.app import Gateway
from gateway.support.config import load_config, parse_config
from tests.conftest import gateway_config
from tests.procs import ROOT, run_cli

SECRETS = {"IVR_TOKEN": "ivr-token", "DESK_TOKEN": "desk-token", "FS_CDR_PASSWORD": "fs-pass",
           "CTI_PATH_TOKEN": "cti-token", "TWILIO_AUTH_TOKEN": "tw-token",
           "DESK_HMAC_SECRET": "desk-secret", "OPS_TOKEN": "ops-token"}


def test_the_example_passes_check_config_and_names_missing_secrets() -> None:
    ok = run_cli("check-config", "--config", "config/examples/phone.yaml", env=SECRETS)
    assert ok.returncode == 0, ok.stderr
    assert "4 sources" in ok.stdout
    missing = run_cli("check-config", "--config", "config/examples/phone.yaml",
                      env={**SECRETS, "FS_CDR_PASSWORD": ""})
    assert missing.returncode == 2
    assert "sources[1] (name=hotline-fs): auth: auth scheme basic needs password" in (
        missing.stderr)


def test_the_default_config_enables_the_hotline_on_loopback() -> None:
    config = load_config(ROOT / "config" / "gateway.yaml")
    hotline = config.source("hotline")
    assert (hotline.adapter, hotline.format) == ("cdr_webhook", "generic_json")
    assert config.server.host == "127.0.0.1"


@pytest.mark.parametrize(("options", "message"), [
    ({"auth": {"scheme": "bearer"}}, "auth: auth scheme bearer needs token"),
    ({"auth": {"scheme": "basic", "username": "fs"}}, "auth scheme basic needs password"),
    ({"auth": {"scheme": "twilio", "auth_token": "t"}},
     "the agent desktop cannot sign as Twilio"),
    ({"auth": {"scheme": "magic"}}, "auth.scheme: Input should be"),
    ({}, "auth: required"),
    ({"auth": {"scheme": "none"}, "missed_calls": "ignore"}, "missed_calls"),
    ({"auth": {"scheme": "none"}, "freeswitch": {"notes_variable": {}}},
     "freeswitch.notes_variable: unknown key"),
])
def test_phone_source_errors(options: dict[str, object], message: str) -> None:
    raw = {"sources": [{"name": "hotline", "adapter": "cdr_webhook", **options}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert any(e.startswith("sources[0] (name=hotline): ") and message in e
               for e in caught.value.errors), caught.value.errors


async def test_a_format_that_is_not_a_phone_format_stops_the_start(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", sources=[
        {"name": "hotline", "adapter": "cdr_webhook", "format": "web_form",
         "auth": {"scheme": "none"}}])
    gateway = Gateway(config)
    with pytest.raises(ConfigError, match="not a phone format"):
        await gateway.start()
    store = getattr(gateway, "store", None)  # opened before the adapters, if at all
    if store is not None:
        await store.close()
