"""``minsheng backup``: a consistent, checked copy of the SQLite store while it takes work."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from gateway.cli import main
from gateway.server.app import Gateway
from gateway.store.backup import BackupError, BackupInfo, backup_sqlite
from tests.conftest import TEST_PRIVACY, base_url, gateway_config

TOTAL = 600
FORM = {"name": "黄女士", "phone": "13800138000", "content": "小区门口共享单车堆放严重"}


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'gateway.db'}"


async def test_backup_under_load_is_consistent_and_restores(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, sqlite_url(tmp_path))
    store_file = tmp_path / "var" / "gateway.db"
    copy = tmp_path / "backups" / "gateway-copy.db"
    gw = Gateway(config)
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as client:
            async def submit(n: int) -> int:
                answer = await client.post("/intake/web", json={
                    **FORM, "phone": f"1380013{n:04d}", "content": f"第{n}件：{FORM['content']}"})
                return answer.status_code

            load = asyncio.gather(*(submit(n) for n in range(TOTAL)))
            while await gw.store.read(lambda tx: tx.fetchone("SELECT COUNT(*) FROM cases")[0]) < 20:
                await asyncio.sleep(0.01)  # mid-stream: some committed, most still to come
            info = await asyncio.to_thread(backup_sqlite, store_file, copy)
            codes = await load
    finally:
        await gw.stop()
    assert set(codes) == {202}
    assert info.integrity == "ok" and copy.stat().st_size == info.bytes
    assert 20 <= info.cases < TOTAL, "the copy should be taken while submissions arrive"
    with sqlite3.connect(copy) as conn:
        # whole transactions only: every case has its journal row and its outbox entry
        orphans = conn.execute(
            "SELECT COUNT(*) FROM cases c WHERE NOT EXISTS (SELECT 1 FROM raw_records r "
            "WHERE r.id = c.raw_id) OR NOT EXISTS (SELECT 1 FROM outbox o "
            "WHERE o.case_id = c.id)").fetchone()[0]
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert orphans == 0
    assert journal_mode == "delete"  # one self-contained file
    assert not list(copy.parent.glob(".*partial"))

    # Restore: the gateway stopped, the copy in the store's place, -wal and -shm removed.
    for leftover in store_file.parent.glob("gateway.db*"):
        leftover.unlink()
    copy.replace(store_file)
    restored = Gateway(config)
    await restored.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(restored)) as client:
            answer = await client.post("/intake/web", json={**FORM, "phone": "13900139000"})
    finally:
        await restored.stop()
    assert answer.status_code == 202
    assert answer.json()["case_code"].split("-")[3] == f"{info.cases + 1:06d}"


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "var"), "store": {"url": url},
                                    "privacy": TEST_PRIVACY}), encoding="utf-8")
    return path


async def make_store(tmp_path: Path) -> Path:
    gw = Gateway(gateway_config(tmp_path, sqlite_url(tmp_path)))
    await gw.start()
    await gw.stop()
    return tmp_path / "var" / "gateway.db"


async def test_cli_backup_and_its_refusals(tmp_path: Path) -> None:
    await make_store(tmp_path)
    config = write_config(tmp_path, sqlite_url(tmp_path))
    dest = tmp_path / "copy.db"
    runner = CliRunner()

    made = runner.invoke(main, ["backup", str(dest), "--config", str(config)])
    again = runner.invoke(main, ["backup", str(dest), "--config", str(config)])
    forced = runner.invoke(main, ["backup", str(dest), "--force", "--config", str(config)])
    onto_itself = runner.invoke(main, ["backup", str(tmp_path / "var" / "gateway.db"),
                                       "--force", "--config", str(config)])
    pg = runner.invoke(main, ["backup", str(tmp_path / "x.db"), "--config",
                              str(write_config(tmp_path, "postgresql://u@127.0.0.1/db"))])
    missing = runner.invoke(main, ["backup", str(tmp_path / "y.db"), "--config",
                                   str(write_config(tmp_path, "sqlite:///nowhere/g.db"))])

    assert made.exit_code == 0, made.output
    assert '"integrity": "ok"' in made.output and '"cases": 0' in made.output
    assert again.exit_code == 1 and "exists (use --force" in again.output
    assert forced.exit_code == 0
    assert onto_itself.exit_code == 1 and "must not overwrite the store" in onto_itself.output
    assert pg.exit_code == 1 and "pg_dump" in pg.output
    assert missing.exit_code == 1 and "no store at" in missing.output


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    dest = tmp_path / "copy.db"
    with pytest.raises(BackupError, match="not a Minsheng Gateway store"):
        backup_sqlite(other, dest)
    assert not dest.exists()
    assert not list(tmp_path.glob(".*partial"))


async def test_a_large_store_under_constant_commits_is_copied_in_one_go(tmp_path: Path) -> None:
    """A copy made in steps restarts at every commit between two steps, and never ends on
    a busy store; the copy is one step, one read transaction."""
    store_file = await make_store(tmp_path)
    with sqlite3.connect(store_file, isolation_level=None) as conn:
        conn.execute("CREATE TABLE filler (b BLOB)")
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO filler VALUES (?)", ((bytes(1000),) for _ in range(40000)))
        conn.execute("COMMIT")
    stop = threading.Event()

    def commit_constantly() -> None:
        with sqlite3.connect(store_file, isolation_level=None) as writer:
            while not stop.is_set():
                writer.execute("INSERT INTO filler VALUES (x'00')")
                time.sleep(0.002)

    busy = threading.Thread(target=commit_constantly, daemon=True)
    busy.start()
    result: list[BackupInfo] = []
    copier = threading.Thread(
        target=lambda: result.append(backup_sqlite(store_file, tmp_path / "copy.db")),
        daemon=True)
    copier.start()
    copier.join(timeout=60)
    finished = not copier.is_alive()
    stop.set()
    busy.join()
    copier.join()
    assert finished, "the backup did not finish while the store kept committing"
    assert result[0].integrity == "ok" and result[0].bytes > 40_000_000
