"""Files with personal data are the owner's alone (0600, folders 0700) whatever the umask:
the SQLite store with its -wal and -shm, the jsonl sink, the attachment tree and backups
made by a real gateway taking a real submission, and files found wider are narrowed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.model.private_files import narrow, open_private, private_dir, private_sqlite
from gateway.server.app import Gateway
from gateway.store.backup import backup_sqlite
from tests.conftest import base_url, gateway_config, sink_lines

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process umask for one test (it is process-wide: restored after)."""
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): mode(p) for p in [root, *root.rglob("*")]}


async def test_a_running_gateway_keeps_its_files_private(tmp_path: Path, umask: int) -> None:
    state = tmp_path / "state"  # none of these folders exist yet: the gateway makes them
    config = gateway_config(
        tmp_path, f"sqlite:///{state / 'db' / 'gateway.db'}", data_dir=str(state / "var"),
        sinks=[{"name": "file", "kind": "jsonl", "path": str(state / "out" / "cases.jsonl"),
                "poll_interval_s": 0.1}],
    )
    gw = Gateway(config)
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            answer = await client.post(
                "/intake/web", data={"phone": "13800138000", "content": "路灯不亮，请尽快修复。"},
                files={"photo": ("现场.png", PNG, "image/png")})
        assert answer.status_code == 202, answer.text
        assert len(await sink_lines(state / "out" / "cases.jsonl", 1)) == 1
        db = state / "db" / "gateway.db"
        live = {name: mode(db.with_name(name))
                for name in ("gateway.db", "gateway.db-wal", "gateway.db-shm")}
        backup = backup_sqlite(db, state / "backups" / "gateway-copy.db")
    finally:
        await gw.stop()
    assert live == {"gateway.db": 0o600, "gateway.db-wal": 0o600, "gateway.db-shm": 0o600}
    assert mode(state / "out" / "cases.jsonl") == 0o600
    attachments = modes_under(state / "var")
    assert len(attachments) == 4  # var, attachments, ab/, ab/cdef…
    assert {m for p, m in attachments.items() if (state / "var" / p).is_dir()} == {0o700}
    assert {m for p, m in attachments.items() if (state / "var" / p).is_file()} == {0o600}
    assert mode(backup.path) == 0o600 and backup.cases == 1
    for folder in ("db", "out", "backups"):
        assert mode(state / folder) == 0o700, folder


def test_files_found_wider_are_narrowed(tmp_path: Path, umask: int) -> None:
    """A store and a sink file made 0644 by an older version, or by hand, are narrowed
    when next opened; another user's file and the operator's own folders are left."""
    db = tmp_path / "gateway.db"
    for path in (db, db.with_name("gateway.db-wal"), tmp_path / "cases.jsonl"):
        path.write_bytes(b"")
        path.chmod(0o644)
    tmp_path.chmod(0o755)
    private_sqlite(db)
    os.close(open_private(tmp_path / "cases.jsonl", os.O_WRONLY | os.O_APPEND))
    assert mode(db) == mode(db.with_name("gateway.db-wal")) == 0o600
    assert mode(tmp_path / "cases.jsonl") == 0o600
    assert mode(tmp_path) == 0o755  # an existing folder is the operator's choice


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_another_users_file_is_left_alone(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.db"
    theirs.write_bytes(b"")
    theirs.chmod(0o644)
    os.chown(theirs, 65534, 65534)  # nobody
    narrow(theirs)
    private_sqlite(theirs)
    assert mode(theirs) == 0o644


def test_private_dir_makes_each_missing_parent(tmp_path: Path, umask: int) -> None:
    private_dir(tmp_path / "a" / "b" / "c")
    private_dir(tmp_path / "a" / "b" / "c")  # again: nothing to do
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
