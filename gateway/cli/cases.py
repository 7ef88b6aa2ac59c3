"""``minsheng cases show | import-status``: a case's status history as the case platform
sent it back, and the same updates from a file (docs/downstream.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gateway.cli.common import (
    config_option,
    echo_json,
    json_option,
    load_or_exit,
    read_logged,
    with_store,
)
from gateway.cli.status import table
from gateway.model.audit_action import AuditAction
from gateway.model.status_csv import StatusRow, read_status_csv
from gateway.store import Store, Tx, cases, statuses
from gateway.store.statuses import StatusEntry

TEXT_SHOWN = 40  # characters of a reply's text in the table (--json has all of it)


@click.group("cases")
def cases_group() -> None:
    """Cases and their status history (案件与办理状态)."""


@cases_group.command("show")
@click.argument("code")
@json_option
@config_option
def show(code: str, as_json: bool, config_path: Path) -> None:
    """Print the case's status history (exit 1 when there is no such case)."""
    config = load_or_exit(config_path)
    code = code.strip().upper()

    def read(tx: Tx) -> tuple[dict[str, object], list[StatusEntry]] | None:
        row = cases.get_by_code(tx, code)
        return None if row is None else (json.loads(row.document), statuses.history(tx, code))

    found = read_logged(config, read, AuditAction.CASES_SHOW,
                        lambda f: (code[:64], {"found": f is not None}))
    if found is None:
        click.echo(f"未找到案件 {code} (no such case)", err=True)
        sys.exit(1)
    document, history = found
    if as_json:
        echo_json({"case_code": code, "status_history": [e.as_json() for e in history]})
        return
    click.echo(f"{code}  channel {document.get('channel')}  received {document.get('received_at')}"
               f"  due {document.get('due_at') or '—'}")
    if not history:
        click.echo("尚无办理状态 No status received yet.")
        return
    click.echo(table(["at 时间", "status 状态", "department 部门", "category 分类", "text 答复"],
                     [[e.at_text, e.status, e.department or "", e.category or "",
                       _short(e.text)] for e in history], set()))


def _short(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= TEXT_SHOWN else flat[:TEXT_SHOWN - 1] + "…"


@cases_group.command("import-status")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
def import_status(file: Path, config_path: Path) -> None:
    """Import status updates from FILE.csv (columns case_code,status,at,department,text,
    category). Every error is listed with its line number and nothing is imported
    (exit 1); a row imported before is not imported twice."""
    config = load_or_exit(config_path)
    with file.open(encoding="utf-8-sig", newline="") as handle:
        rows, errors = read_status_csv(handle)
    if errors:
        _fail(file, errors)

    async def work(store: Store) -> list[str] | tuple[int, int]:
        missing = await store.read(lambda tx: statuses.missing_codes(
            tx, [r.case_code for r in rows]))
        if missing:
            return [f"line {r.line}: case_code: 未找到案件 {r.case_code} (no such case)"
                    for r in rows if r.case_code in missing]
        return await store.write(lambda tx: _record_all(tx, rows))

    result = with_store(config, work)
    if isinstance(result, list):
        _fail(file, result)
    else:
        new, repeated = result
        click.echo(f"{file}: {new} imported, {repeated} already there (已导入 {new} 条)")


def _record_all(tx: Tx, rows: list[StatusRow]) -> tuple[int, int]:
    """(new entries, repeats) after recording every row in one transaction."""
    new = 0
    for row in rows:
        found = statuses.record_for_code(tx, row.case_code, row.update, "import")
        new += bool(found and found[1])
    return new, len(rows) - new


def _fail(file: Path, errors: list[str]) -> None:
    click.echo(f"{file}: {len(errors)} 处错误，未导入任何记录 ({len(errors)} errors, nothing "
               "imported)", err=True)
    for error in errors:
        click.echo(f"  {error}", err=True)
    sys.exit(1)
