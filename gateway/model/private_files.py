"""Files that hold personal data are their owner's alone, whatever the umask.

The store (the SQLite file, and its ``-wal`` and ``-shm``, which SQLite creates with the
main file's mode), the ``jsonl`` sink file, the attachment tree and backups hold names,
phone numbers and ID-card numbers. With the usual umask 022 a plain ``open`` makes them
0644, readable by every local user; so they are created 0600 and their folders 0700,
and one found wider (made before this rule, or by hand) is narrowed when it is opened.
The umask can only take bits away, so the modes asked for here are what the files get.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
_OTHERS = stat.S_IRWXG | stat.S_IRWXO
# What SQLite keeps beside a database; each holds pages of it.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create ``path`` and any missing parent 0700; folders that exist are left as they are
    (the operator's ``data_dir`` may be shared on purpose; what is in it is not)."""
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by another thread or process
            continue


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """``os.open`` creating 0600 and narrowing a wider file it finds: an ``opener`` for
    ``open()``, so a file rotated away and created again is private too."""
    fd = os.open(path, flags, FILE_MODE)
    try:
        narrowed = _narrowed(os.fstat(fd))
        if narrowed is not None:
            os.fchmod(fd, narrowed)
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_file(path: Path) -> None:
    """Make sure ``path`` exists, 0600: created empty when missing, narrowed when wider.
    An existing file is not opened (reading it may need no more than its mode allows)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        narrow(path)


def narrow(path: Path) -> None:
    """Take group and other bits off ``path`` if it exists and is ours."""
    try:
        narrowed = _narrowed(os.stat(path))
    except FileNotFoundError:
        return
    if narrowed is not None:
        os.chmod(path, narrowed)


def private_sqlite(path: Path) -> None:
    """Before SQLite opens ``path``: its folder, the file and what lies beside it private."""
    private_dir(path.parent)
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        narrow(path.with_name(path.name + suffix))


def _narrowed(info: os.stat_result) -> int | None:
    """The mode without group and other bits, if the file has some and is ours (another
    owner's is left alone: only root or its owner may change it, and failing would stop
    the gateway); None when nothing is to change."""
    if info.st_mode & _OTHERS and info.st_uid == os.geteuid():
        return stat.S_IMODE(info.st_mode) & ~_OTHERS
    return None
