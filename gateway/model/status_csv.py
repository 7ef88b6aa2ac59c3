"""Status updates as a batch file (``minsheng cases import-status FILE.csv``), for case
platforms that can only export: one update per row, the columns of the status API plus
``case_code``. Every broken rule of every row is reported at once with its line number
(the physical line, so a quoted cell spanning lines still points at the right place);
nothing is imported from a file with an error.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.model.case_status import FIELDS, StatusUpdate, parse_update
from gateway.model.errors import Rejected

COLUMNS = ("case_code", *FIELDS)
REQUIRED = ("case_code", "status", "at")


@dataclass(frozen=True)
class StatusRow:
    line: int
    case_code: str
    update: StatusUpdate


def read_status_csv(lines: Iterable[str]) -> tuple[list[StatusRow], list[str]]:
    """The rows of a status CSV and the errors found, each ``line N: field: zh (en)``."""
    reader = csv.DictReader(lines)
    header = list(reader.fieldnames or [])
    errors = _header_errors(header)
    if errors:
        return [], errors
    rows: list[StatusRow] = []
    for record in reader:
        line = reader.line_num
        if None in record:
            errors.append(f"line {line}: 列数多于表头 (more cells than the header has columns)")
            continue
        code = (record.pop("case_code") or "").strip().upper()
        if not code:
            errors.append(f"line {line}: case_code: 必须填写案件编号 (case_code is required)")
        try:
            update = parse_update({k: v for k, v in record.items() if v is not None})
        except Rejected as exc:
            errors += [f"line {line}: {e.field}: {e.reason}" for e in exc.errors]
            continue
        if code:
            rows.append(StatusRow(line, code, update))
    return rows, errors


def _header_errors(header: list[str]) -> list[str]:
    errors = [f"line 1: 缺少列 {name} (missing column {name!r})"
              for name in REQUIRED if name not in header]
    errors += [f"line 1: 未知列 {name} (unknown column {name!r}; known: {', '.join(COLUMNS)})"
               for name in header if name not in COLUMNS]
    return errors
