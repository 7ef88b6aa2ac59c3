"""What every ``minsheng`` command group shares: the --config and --json options, loading
the config (exit 2 listing every error), a store opened for one command, a read recorded
in the access log, and --since."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from gateway.model import timespan
from gateway.model.audit_action import AuditAction
from gateway.model.errors import ConfigError
from gateway.store import Store, Tx, audit
from gateway.support.config import DEFAULT_CONFIG_PATH, GatewayConfig, load_config

T = TypeVar("T")
Target = tuple[str, Mapping[str, Any]]  # what a command read, and its counts/parameters

config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=DEFAULT_CONFIG_PATH,
    show_default=True, help="gateway config file",
)
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")

def load_or_exit(config_path: Path) -> GatewayConfig:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def with_store(config: GatewayConfig, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store, run ``work`` with it, close it."""

    async def main() -> T:
        from gateway.server.app import open_store

        store = open_store(config)
        await store.start()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def cli_actor() -> str:
    """The access log's ``actor`` of a command: ``os:`` and the operating-system user
    running it, so a read through the CLI is told apart from one through a token."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return "os:unknown"


def read_logged(config: GatewayConfig, read: Callable[[Tx], T], action: AuditAction,
                target: Callable[[T], Target]) -> T:
    """Run ``read`` on the configured store, then append what it read to the access log
    before the command prints anything."""

    async def work(store: Store) -> T:
        found = await store.read(read)
        what, detail = target(found)
        await store.write(lambda tx: audit.record(tx, cli_actor(), action, what, detail))
        return found

    return with_store(config, work)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def parse_since(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """``gateway.model.timespan.parse_since`` for a command line: a bad value is a usage error."""
    try:
        return timespan.parse_since(text, tz, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
