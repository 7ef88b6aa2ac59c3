"""``minsheng quarantine`` and ``minsheng dlq``: what could not become a case, and what
could not be delivered (docs/operations.md)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.cli.common import config_option, load_or_exit, read_logged, with_store
from gateway.model.audit_action import AuditAction
from gateway.store import Store, outbox, quarantine


@click.group("quarantine")
def quarantine_group() -> None:
    """Items that could not become cases."""


@quarantine_group.command("list")
@config_option
def quarantine_list(config_path: Path) -> None:
    """List open quarantine entries."""
    entries = read_logged(load_or_exit(config_path), lambda tx: quarantine.list_open(tx),
                          AuditAction.QUARANTINE_LIST, lambda e: ("quarantine", {"count": len(e)}))
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


@click.group()
def dlq() -> None:
    """Dead letters: deliveries that kept failing."""


@dlq.command("list")
@config_option
def dlq_list(config_path: Path) -> None:
    """List dead-lettered deliveries with their last error."""
    dead = read_logged(load_or_exit(config_path), lambda tx: outbox.list_dead(tx),
                       AuditAction.DLQ_LIST, lambda d: ("dlq", {"count": len(d)}))
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
