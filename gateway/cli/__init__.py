"""``minsheng``: run the gateway and the tools IT and operations use beside it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TypeVar

import click

from gateway.cli.common import config_option, echo_json, load_or_exit
from gateway.store.migrations import SchemaTooNew
from gateway.support.config import read_config_file
from gateway.support.config_checks import clear_secret_warnings
from gateway.support.logging import configure_logging, get_logger

T = TypeVar("T")
# Command groups of the channels and of operations, imported only when used (their
# modules pull in parsers a plain `minsheng run` does not need).
LAZY_COMMANDS: dict[str, str] = {
    "audit": "gateway.cli.audit:audit_group",
    "calls": "adapters.cdr_webhook.cli:calls",
    "cases": "gateway.cli.cases:cases_group",
    "classify": "gateway.cli.routing:classify",
    "clusters": "gateway.cli.dedup:clusters",
    "code": "gateway.cli.model:code",
    "deadline": "gateway.cli.routing:deadline",
    "dedup": "gateway.cli.dedup:dedup_group",
    "dlq": "gateway.cli.queues:dlq",
    "feeds": "adapters.opinion.cli:feeds",
    "normalize": "gateway.cli.normalize:normalize",
    "notify": "gateway.cli.notify:notify",
    "quarantine": "gateway.cli.queues:quarantine_group",
    "report": "gateway.cli.routing:report",
    "retention": "gateway.cli.retention:retention_group",
    "route": "gateway.cli.routing:route",
    "schema": "gateway.cli.model:schema",
    "sites": "adapters.opinion.cli:sites",
    "status": "gateway.cli.status:status",
    "subject": "gateway.cli.subject:subject_group",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
def main() -> None:
    """Minsheng Gateway (民声网关): intake of a citizen-service hotline."""


def entry() -> None:
    """The ``minsheng`` command: what any subcommand logs (``quarantine reprocess`` runs
    the pipeline) is masked, on stderr, like the gateway's own logs; ``run`` sets logging
    up again with its config's format and level. Tests call ``main`` in-process."""
    configure_logging()
    try:
        main()
    except SchemaTooNew as exc:  # every command and ``run``: one line, not a traceback
        click.echo(str(exc), err=True)
        sys.exit(1)


@main.command()
@config_option
def run(config_path: Path) -> None:
    """Start the gateway and serve until SIGTERM or Ctrl-C (``server.workers``: as
    that many processes on one port)."""
    from gateway.server.workers import run_gateway

    config = load_or_exit(config_path)
    configure_logging(config.log.format, config.log.level)
    log = get_logger("gateway.config")
    for warning in clear_secret_warnings(read_config_file(config_path)):
        log.warning("secret_in_clear", where=warning)
    sys.exit(run_gateway(config))


@main.command("check-config")
@config_option
@click.option("--connect", is_flag=True,
              help="also reach the store, each source and each sink (exit 1 if any fails)")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1, max=120), default=10.0,
              show_default=True, help="seconds each target may take with --connect")
def check_config(config_path: Path, connect: bool, timeout_s: float) -> None:
    """Validate the config; list every error and exit 2, or exit 0.

    Off loopback, something that answers the network without credentials is an error
    (docs/security.md). Secrets written in clear instead of ${VAR} are warnings. With
    --connect, one line per target says whether it was reached (docs/downstream.md)."""
    config = load_or_exit(config_path)
    for warning in clear_secret_warnings(read_config_file(config_path)):
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{config_path}: ok ({len(config.sources)} sources, {len(config.sinks)} sinks)")
    if connect:
        from gateway.cli.connect import report_connections

        sys.exit(report_connections(config, timeout_s))


@main.command()
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="replace DEST if it exists")
@config_option
def backup(dest: Path, force: bool, config_path: Path) -> None:
    """Copy the SQLite store to DEST, consistent and checked, while the gateway runs.

    Prints what the copy holds (exit 0), or why there is none (exit 1). For PostgreSQL
    use pg_dump (docs/operations.md#backups).
    """
    from gateway.store.backup import BackupError, backup_sqlite, sqlite_path

    config = load_or_exit(config_path)
    try:
        info = backup_sqlite(sqlite_path(config.store.url), dest, overwrite=force)
    except BackupError as exc:
        click.echo(f"backup failed: {exc}", err=True)
        sys.exit(1)
    echo_json(info.as_json())
