"""``minsheng subject export | erase``: a person's right to a copy and to deletion
(PIPL Art. 45, 47; docs/personal-data.md#export-and-erasure-by-person).

Both find the person by one phone number, e-mail address or case code
(gateway/store/subject.py). Each leaves one entry in the access log
(gateway/store/audit.py): who exported or erased which cases, never the person's data.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import click

from gateway.cli.common import cli_actor, config_option, echo_json, load_or_exit, with_store
from gateway.model.attachments import AttachmentStore, sanitize_file_name
from gateway.model.audit_action import AuditAction
from gateway.model.private_files import open_private
from gateway.store import Store, Tx, attachment_files, audit, erasure, subject
from gateway.store.erasure import Target
from gateway.store.subject import Subject, SubjectKind
from gateway.store.subject_export import Export, gather
from gateway.support.config import GatewayConfig


def _subject(phone: str | None, email: str | None, case_code: str | None) -> Subject:
    given = [(k, v) for k, v in ((SubjectKind.PHONE, phone), (SubjectKind.EMAIL, email),
                                 (SubjectKind.CASE_CODE, case_code)) if v]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --phone, --email, --case-code "
                               "(请只指定一项)")
    try:
        return Subject(*given[0])
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def who(fn: Any) -> Any:
    for option in reversed([
        click.option("--phone", help="the person's phone number, any spelling"),
        click.option("--email", help="the person's e-mail address"),
        click.option("--case-code", help="one case code"),
    ]):
        fn = option(fn)
    return fn


@click.group("subject")
def subject_group() -> None:
    """A person's data: a copy of it, or its erasure (个人信息的复制与删除)."""


async def _target(store: Store, wanted: Subject) -> Target:
    held = await store.read(lambda tx: subject.find(tx, wanted))
    return await store.read(lambda tx: erasure.target_of(tx, held))


@subject_group.command("export")
@who
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the zip file to write (owner-only; must not exist)")
@config_option
def export(phone: str | None, email: str | None, case_code: str | None, out: Path,
           config_path: Path) -> None:
    """Write everything held about one person to a zip of JSON and files (exit 1 when
    nothing is held)."""
    config = load_or_exit(config_path)
    wanted = _subject(phone, email, case_code)

    async def work(store: Store) -> Export | None:
        target = await _target(store, wanted)
        if target.empty:
            return None
        found = await store.read(lambda tx: gather(tx, target))
        await store.write(lambda tx: audit.record(
            tx, cli_actor(), AuditAction.SUBJECT_EXPORT, _codes(target),
            {"kind": wanted.kind.value, "cases": len(target.case_ids)}))
        return found

    found = with_store(config, work)
    if found is None:
        click.echo("未找到此人的数据 (nothing held about this person)", err=True)
        sys.exit(1)
    written = write_zip(out, found, AttachmentStore(config.attachments_dir))
    click.echo(f"{out}: {written} files (已导出)")


def write_zip(out: Path, found: Export, files: AttachmentStore) -> int:
    """The zip, created owner-only (0600) and never over an existing file."""
    fd = open_private(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    names = 0
    with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in sorted(found.documents.items()):
            zf.writestr(name, json.dumps(value, ensure_ascii=False, indent=2, default=str))
            names += 1
        for raw_id, payload in sorted(found.payloads.items()):
            zf.writestr(f"raw/{raw_id}.bin", payload)
            names += 1
        for digest, file_name in sorted(set(found.attachments)):
            try:
                data = files.read(digest)
            except (FileNotFoundError, ValueError):
                continue  # purged by retention: the JSON still lists it
            zf.writestr(f"attachments/{digest[:12]}-{sanitize_file_name(file_name)}", data)
            names += 1
    return names


@subject_group.command("erase")
@who
@click.option("--reason", required=True, help="why (a ticket number; no personal data)")
@click.option("--operator", default=None, help="who asked for it (default: the OS user)")
@config_option
def erase(phone: str | None, email: str | None, case_code: str | None, reason: str,
          operator: str | None, config_path: Path) -> None:
    """Delete everything held about one person across every table, file and index,
    leave a tombstone, tell the sinks; print what was removed (exit 1: nothing held)."""
    config = load_or_exit(config_path)
    wanted = _subject(phone, email, case_code)
    report = asyncio.run(erase_subject(config, wanted, reason,
                                       operator or getpass.getuser()))
    if report is None:
        click.echo("未找到此人的数据 (nothing held about this person)", err=True)
        sys.exit(1)
    echo_json(report)


async def erase_subject(config: GatewayConfig, wanted: Subject, reason: str,
                        operator: str) -> dict[str, Any] | None:
    """Find, erase in one transaction, delete the files, then scrub the engine's files
    (after the store is closed, so SQLite's checkpoint waits for no reader of its own)."""
    from gateway.server.app import open_store

    keys = config.privacy.keys(config.data_dir)
    sinks = [s.name for s in config.sinks if s.enabled]
    store = open_store(config)
    await store.start()
    try:
        target = await _target(store, wanted)
        if target.empty:
            return None
        def erase_and_log(tx: Tx) -> erasure.Erased:
            erased = erasure.erase(tx, target, wanted, keys, sinks, reason, operator)
            audit.record(tx, f"os:{operator}", AuditAction.SUBJECT_ERASE, _codes(target),
                         {"kind": wanted.kind.value, "cases": len(target.case_ids)})
            return erased

        done = await store.write(erase_and_log)
        files = await attachment_files.delete_queued(
            store, AttachmentStore(config.attachments_dir))
    finally:
        await store.close()
    scrubbed = await asyncio.to_thread(_scrub, store)
    return {**done.as_json(), "attachment_files_deleted": files, "scrubbed": scrubbed}


def _codes(target: Target) -> str:
    """The access log's target: the case codes concerned (no personal data)."""
    return ",".join(target.case_codes) or "(no case)"


def _scrub(store: Store) -> list[str]:
    dialect = store.db.dialect
    conn = dialect.connect()
    try:
        return erasure.scrub(conn, dialect.name)
    finally:
        conn.close()
