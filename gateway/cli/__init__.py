"""``minsheng``: run the gateway and the tools IT and operations use beside it."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from gateway.cli.common import config_option, echo_json, load_or_exit, with_store
from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import CHANNELS, RawRecord, complaint_json_schema
from gateway.store import Store, outbox, quarantine
from gateway.support import registry
from gateway.support.config import SourceConfig, read_config_file
from gateway.support.config_checks import clear_secret_warnings
from gateway.support.logging import configure_logging, get_logger

T = TypeVar("T")
# Command groups of the channels and of operations, imported only when used (their
# modules pull in parsers a plain `minsheng run` does not need).
LAZY_COMMANDS: dict[str, str] = {
    "calls": "adapters.cdr_webhook.cli:calls",
    "cases": "gateway.cli.cases:cases_group",
    "classify": "gateway.cli.routing:classify",
    "clusters": "gateway.cli.dedup:clusters",
    "deadline": "gateway.cli.routing:deadline",
    "dedup": "gateway.cli.dedup:dedup_group",
    "feeds": "adapters.opinion.cli:feeds",
    "report": "gateway.cli.routing:report",
    "route": "gateway.cli.routing:route",
    "sites": "adapters.opinion.cli:sites",
    "status": "gateway.cli.status:status",
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
    main()


@main.command()
@config_option
def run(config_path: Path) -> None:
    """Start the gateway and serve until SIGTERM or Ctrl-C."""
    from gateway.server.app import Gateway

    config = load_or_exit(config_path)
    configure_logging(config.log.format, config.log.level)
    log = get_logger("gateway.config")
    for warning in clear_secret_warnings(read_config_file(config_path)):
        log.warning("secret_in_clear", where=warning)
    asyncio.run(Gateway(config).run_forever())


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
    --connect, one line per target says whether it was reached (docs/attachments-and-checks.md)."""
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


@main.command()
def schema() -> None:
    """Print the JSON Schema of the canonical complaint (schema v1)."""
    echo_json(complaint_json_schema())


@main.group()
def code() -> None:
    """Case codes."""


@code.command("check")
@click.argument("case_code")
@click.option("--region", help="the centre's region prefix (default: from --config if found)")
@config_option
def code_check(case_code: str, region: str | None, config_path: Path) -> None:
    """Exit 0 if CASE_CODE is a valid case code, 1 saying why otherwise."""
    from gateway.model.casecode import InvalidCaseCode, parse_code

    if region is None and config_path.exists():
        region = load_or_exit(config_path).region_code
    try:
        parsed = parse_code(case_code, region)
    except InvalidCaseCode as exc:
        click.echo(f"invalid: {exc}")
        sys.exit(1)
    click.echo(f"valid: region {parsed.region}, date {parsed.day}, channel {parsed.channel}, "
               f"sequence {parsed.sequence}")


# `minsheng normalize` exits: 0 a complaint, 1 a rejection, 2 a bad config or usage,
# 3 a mail the gateway's mail filters set aside (journaled `filtered`, no case).
EXIT_REJECTED = 1
EXIT_FILTERED = 3
EMAIL_FORMAT = "email"  # the registry's name of the e-mail normalizer
EMAIL_ADAPTER = "imap_email"  # and of the e-mail adapter, whose filters it applies


@main.command()
@click.option("--format", "fmt", required=True, help="normalizer name, e.g. web_form")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--content-type", help="media type of FILE (default: from its extension)")
@click.option("--channel", type=click.Choice(CHANNELS), default=None)
@click.option("--source", "source_name", default="dry-run",
              help="source whose options apply (e-mail: also its own_addresses)")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="read the source's options and time zone from this config")
def normalize(fmt: str, file: Path, content_type: str | None, channel: str | None,
              source_name: str, config_path: Path | None) -> None:
    """Run one normalizer on a raw sample and say what the gateway would do with it.

    \b
    Exit status:
      0  a complaint: the draft is printed as JSON
      1  rejected: {"rejected": [...]} names the fields and reasons
      2  a bad option or config
      3  e-mail only: filtered, no case (an auto-reply, a bounce, a read receipt,
         the gateway's own mail, a configured sender, a newsletter unless the source
         tags them): {"filtered": {"filter", "signal", "reason"}}, what the IMAP
         source journals
    """
    try:
        fn = registry.normalizer(fmt)
    except LookupError as exc:
        raise click.UsageError(str(exc)) from None
    context, source = _normalizer_context(source_name, config_path)
    guessed = {".json": "application/json", ".eml": "message/rfc822", ".xml": "application/xml",
               ".html": "text/html", ".txt": "application/x-www-form-urlencoded"}
    raw = RawRecord(
        channel=channel or "web",  # type: ignore[arg-type]
        source=source_name, source_ref=file.name, payload=file.read_bytes(),
        content_type=content_type or guessed.get(file.suffix, "application/octet-stream"),
        received_at=datetime.now(UTC), metadata={"file": str(file)},
    )
    if fmt == EMAIL_FORMAT:
        filtered = _mail_filtered(raw.payload, source)
        if filtered is not None:
            echo_json({"filtered": filtered})
            sys.exit(EXIT_FILTERED)
    try:
        draft = fn(raw, context)
    except Rejected as exc:
        echo_json({"rejected": exc.as_list()})
        sys.exit(EXIT_REJECTED)
    click.echo(draft.model_dump_json(indent=2))


def _normalizer_context(source_name: str,
                        config_path: Path | None) -> tuple[NormalizerContext, SourceConfig | None]:
    """The named source's options and the time zone from the config, if one is given;
    and the source's config (``None`` without one)."""
    if config_path is None:
        return NormalizerContext(source_name), None
    config = load_or_exit(config_path)
    if source_name == "dry-run":
        return NormalizerContext(source_name, config.tz), None
    try:
        source = config.source(source_name)
    except KeyError:
        known = ", ".join(s.name for s in config.sources) or "none"
        raise click.UsageError(
            f"{config_path} has no source {source_name!r} (sources: {known})"
        ) from None
    from gateway.server.app import binding_for

    return binding_for(config, source).context, source  # with the adapter's resources


def _mail_filtered(payload: bytes, source: SourceConfig | None) -> dict[str, str] | None:
    """What the IMAP source journals for a mail its filters set aside (``None``: a
    possible complaint), asked of the e-mail adapter through the registry, with the
    source's options (own addresses, sender patterns, newsletters) when it is an e-mail
    source (the defaults without one)."""
    options = source.options if source is not None and source.adapter == EMAIL_ADAPTER else {}
    verdict: dict[str, str] | None = registry.adapter_class(EMAIL_ADAPTER).set_aside(
        payload, options)
    return verdict


@main.group("quarantine")
def quarantine_group() -> None:
    """Items that could not become cases."""


@quarantine_group.command("list")
@config_option
def quarantine_list(config_path: Path) -> None:
    """List open quarantine entries."""
    entries = with_store(load_or_exit(config_path),
                          lambda s: s.read(lambda tx: quarantine.list_open(tx)))
    if not entries:
        click.echo("quarantine is empty")
    for e in entries:
        when = datetime.fromtimestamp(e.created_at, UTC).isoformat(timespec="seconds")
        click.echo(f"{e.id}\t{when}\t{e.source}\traw:{e.raw_id}\t{e.reason}\t"
                   f"{json.dumps(e.detail, ensure_ascii=False)[:160]}")


@quarantine_group.command("reprocess")
@click.argument("ids", nargs=-1, type=int)
@config_option
def quarantine_reprocess(ids: tuple[int, ...], config_path: Path) -> None:
    """Run quarantined items (all, or the IDS given) through the pipeline again."""
    from gateway.server.app import wire_intake

    config = load_or_exit(config_path)

    async def work(store: Store) -> int:
        intake, _ = wire_intake(config, store)
        wanted = list(ids) or [e.id for e in await store.read(lambda tx: quarantine.list_open(tx))]
        failures = 0
        for qid in wanted:
            try:
                result = await intake.reprocess(qid)
            except LookupError as exc:
                click.echo(f"{qid}\tskipped: {exc}")
                failures += 1
                continue
            click.echo(f"{qid}\t{result.outcome}\t{result.case_code or ''}")
            failures += result.outcome in ("rejected", "quarantined")
        return failures

    sys.exit(1 if with_store(config, work) else 0)


@main.group()
def dlq() -> None:
    """Dead letters: deliveries that kept failing."""


@dlq.command("list")
@config_option
def dlq_list(config_path: Path) -> None:
    """List dead-lettered deliveries with their last error."""
    dead = with_store(load_or_exit(config_path), lambda s: s.read(lambda tx: outbox.list_dead(tx)))
    if not dead:
        click.echo("no dead letters")
    for d in dead:
        click.echo(f"{d.outbox_id}\t{d.sink}\t{d.kind}\t{d.case_code or ''}\t"
                   f"attempts={d.attempts}\t{d.last_error or ''}")


@dlq.command("replay")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True, help="replay every dead letter")
@config_option
def dlq_replay(ids: tuple[int, ...], replay_all: bool, config_path: Path) -> None:
    """Put dead letters (IDS, or --all) back in the outbox for delivery."""
    if not ids and not replay_all:
        raise click.UsageError("give outbox IDS or --all")
    chosen = None if replay_all else list(ids)
    n = with_store(
        load_or_exit(config_path), lambda s: s.write(lambda tx: outbox.replay_dead(tx, chosen))
    )
    click.echo(f"{n} dead letter(s) queued again; a running gateway delivers them shortly")
