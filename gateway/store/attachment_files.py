"""Deleting attachment files no case needs any more, safely across a crash.

Files are content-addressed and shared: a file goes only when no remaining case lists
its digest (``case_attachments``). The database and the file tree cannot change in one
transaction, so the transaction that drops a case's last reference also queues the
digest in ``attachment_deletions``; the files are deleted after the commit and the queue
entries then removed. A crash in between leaves the queue, which the next run (the daily
purge, ``minsheng retention run``, the next erasure) finishes: the end state is the same.

A new case may bring the same bytes while a file is being deleted (the pipeline keeps
blobs before its commit and skips a file that exists). So a file is first renamed aside,
the index is asked again, and only then is the file unlinked (or renamed back when a
case lists it again); a blob kept meanwhile is written anew under the real name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable

from gateway.model.attachments import AttachmentStore
from gateway.store import Store
from gateway.store.engine import Tx

_CHUNK = 200  # digests per statement and per round


def _marks(values: list[str]) -> str:
    return ", ".join("?" for _ in values)


def queue_unused(tx: Tx, digests: Iterable[str]) -> int:
    """Queue the digests among ``digests`` that no case lists any more; how many."""
    wanted = sorted(set(digests))
    queued = 0
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start:start + _CHUNK]
        used = {str(r[0]) for r in tx.fetchall(
            f"SELECT DISTINCT sha256 FROM case_attachments WHERE sha256 IN ({_marks(chunk)})",
            chunk)}
        for digest in chunk:
            if digest not in used:
                tx.execute("INSERT INTO attachment_deletions (sha256, queued_at) VALUES (?, ?) "
                           "ON CONFLICT (sha256) DO NOTHING", (digest, time.time()))
                queued += 1
    return queued


def queued(tx: Tx, limit: int = _CHUNK) -> list[str]:
    return [str(r[0]) for r in tx.fetchall(
        "SELECT sha256 FROM attachment_deletions ORDER BY sha256 LIMIT ?", (limit,))]


def still_listed(tx: Tx, digests: list[str]) -> set[str]:
    if not digests:
        return set()
    return {str(r[0]) for r in tx.fetchall(
        f"SELECT DISTINCT sha256 FROM case_attachments WHERE sha256 IN ({_marks(digests)})",
        digests)}


def finish(tx: Tx, digests: list[str]) -> None:
    if digests:
        tx.execute(f"DELETE FROM attachment_deletions WHERE sha256 IN ({_marks(digests)})",
                   digests)


def set_aside(files: AttachmentStore, digest: str) -> str | None:
    """Rename the file aside (None when there is none); blocking."""
    path = files.path_of(digest)
    aside = path.with_name(f".{path.name}.deleting")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    return str(aside)


def settle_aside(files: AttachmentStore, digest: str, aside: str, keep: bool) -> None:
    """Unlink the file set aside, or put it back when a case lists it again; blocking."""
    path = files.path_of(digest)
    if keep and not path.exists():
        os.replace(aside, path)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(aside)


async def delete_queued(store: Store, files: AttachmentStore) -> int:
    """Delete the queued files no case lists, until the queue is empty; how many went."""
    deleted = 0
    while True:
        digests = await store.read(queued)
        if not digests:
            return deleted
        aside = {d: a for d in digests
                 if (a := await asyncio.to_thread(set_aside, files, d)) is not None}
        listed = await store.read(lambda tx: still_listed(tx, digests))  # noqa: B023 - awaited here
        for digest, path in aside.items():
            await asyncio.to_thread(settle_aside, files, digest, path, digest in listed)
        deleted += len(set(aside) - listed)
        await store.write(lambda tx: finish(tx, digests))  # noqa: B023 - awaited here
