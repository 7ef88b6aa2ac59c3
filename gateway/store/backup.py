"""A consistent copy of the SQLite store, taken while the gateway runs.

Copying ``gateway.db`` with ``cp`` while the gateway writes is not a backup: the WAL
beside it holds the latest commits, and a copy taken mid-checkpoint can be torn.
SQLite's online backup API reads the database inside one read transaction, so the copy
is the store exactly as of one commit, with every acknowledged submission up to then;
the gateway keeps accepting meanwhile (WAL readers do not block the writer). The copy
is written beside its destination first, checked (``PRAGMA integrity_check``) and only
then moved into place, so a failed backup never leaves a half file under the name.

PostgreSQL has its own tools (``pg_dump``, base backups with WAL archiving);
docs/operations.md shows the commands.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from gateway.model.errors import GatewayError
from gateway.model.private_files import private_dir, private_file


class BackupError(GatewayError):
    """The backup could not be made; nothing was left at the destination."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    bytes: int
    cases: int
    raw_records: int
    integrity: str

    def as_json(self) -> dict[str, object]:
        return {"path": str(self.path), "bytes": self.bytes, "cases": self.cases,
                "raw_records": self.raw_records, "integrity": self.integrity}


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite:///`` store URL."""
    if not url.startswith("sqlite:///"):
        raise BackupError(
            "only a SQLite store is backed up by minsheng backup; for PostgreSQL use "
            "pg_dump (docs/operations.md#backups)")
    return Path(url.removeprefix("sqlite:///"))


def backup_sqlite(source: Path, dest: Path, *, overwrite: bool = False) -> BackupInfo:
    """Copy the store at ``source`` to ``dest`` (a new file), checked; return what it holds."""
    if not source.is_file():
        raise BackupError(f"no store at {source}")
    if dest.resolve() == source.resolve():
        raise BackupError("the backup must not overwrite the store itself")
    if dest.exists() and not overwrite:
        raise BackupError(f"{dest} exists (use --force to replace it)")
    private_dir(dest.parent)
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    private_file(partial)  # the copy holds what the store holds: 0600, kept by the rename
    try:
        # Read-only: a backup never changes the store or takes its write lock.
        with closing(_connect(f"file:{source}?mode=ro", uri=True)) as live, \
                closing(_connect(str(partial))) as copy:
            # All pages in one step, so in one read transaction: in steps, every commit
            # of the running gateway between two steps would restart the copy, and a
            # busy store would never finish. A WAL reader does not block the writer;
            # checkpoints wait for it, so the WAL grows for the duration.
            live.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            cases, raws, integrity = _describe(copy)
        if integrity != "ok":
            raise BackupError(f"the copy failed its integrity check: {integrity}")
        _fsync(partial)
        os.replace(partial, dest)
        _fsync(dest.parent)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return BackupInfo(dest, dest.stat().st_size, cases, raws, integrity)


def _connect(target: str, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(target, uri=uri, isolation_level=None, timeout=30.0)


def _describe(conn: sqlite3.Connection) -> tuple[int, int, str]:
    """Cases and raw records in the copy, and its integrity check ("ok" when sound)."""
    integrity = "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
    tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
    if not {"cases", "raw_records"} <= tables:
        raise BackupError("the source is not a Minsheng Gateway store (no cases table)")
    cases = int(conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0])
    raws = int(conn.execute("SELECT COUNT(*) FROM raw_records").fetchone()[0])
    return cases, raws, integrity


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
