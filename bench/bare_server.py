"""The baselines of the intake benchmark: aiohttp with nothing (or only a journal) behind it.

``POST /intake/<source>`` reads and parses the JSON body and answers 202 with a small
JSON document, the same shape the gateway answers; ``GET /healthz`` says it is up. No
access log (the gateway runs without one too). Run by ``bench/ingest.py`` as its own
process::

    .venv/bin/python bench/bare_server.py --port 8081
    .venv/bin/python bench/bare_server.py --port 8082 --journal /tmp/floor.db

With ``--journal`` it is the *durable floor*: before answering, the raw body is inserted
into a SQLite table (WAL, ``synchronous=FULL``, as the gateway's store) by one writer
thread that group-commits whatever is queued, one fsync per batch. It measures what
durability alone costs next to the bare server, so the gap between it and the gateway is
the gateway's own work (normalizing, dedup, cases, outbox, forwarding, logs).
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import sqlite3
import threading
from pathlib import Path

from aiohttp import web

ANSWER = {"outcome": "new", "case_code": "CY-20191120-W-000123-7"}


class Journal:
    """One writer thread: insert every queued body, commit once, then answer them all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[tuple[bytes, asyncio.Future[int]]] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, body BLOB)")
        threading.Thread(target=self._write_loop, args=(conn,), daemon=True).start()

    async def append(self, body: bytes) -> int:
        assert self._loop is not None
        future: asyncio.Future[int] = self._loop.create_future()
        self._queue.put((body, future))
        return await future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        while True:
            jobs = [self._queue.get()]
            while True:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            conn.execute("BEGIN IMMEDIATE")
            ids = [conn.execute("INSERT INTO raw (body) VALUES (?)", (body,)).lastrowid or 0
                   for body, _ in jobs]
            conn.execute("COMMIT")
            assert self._loop is not None
            self._loop.call_soon_threadsafe(_resolve, [f for _, f in jobs], ids)


JOURNAL = web.AppKey("journal", Journal)


def _resolve(futures: list[asyncio.Future[int]], ids: list[int]) -> None:
    for future, row_id in zip(futures, ids, strict=True):
        if not future.done():
            future.set_result(row_id)


async def intake(request: web.Request) -> web.Response:
    journal = request.app.get(JOURNAL)
    if journal is None:
        await request.json()
        return web.json_response(ANSWER, status=202)
    body = await request.read()
    await request.json()  # parsed, as the bare server does (aiohttp keeps the bytes read)
    await journal.append(body)
    return web.json_response(ANSWER, status=202)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


def build_app(journal_path: Path | None = None) -> web.Application:
    app = web.Application()
    app.add_routes([web.post("/intake/{source}", intake), web.get("/healthz", healthz)])
    if journal_path is not None:
        journal = Journal(journal_path)
        app[JOURNAL] = journal

        async def start(_: web.Application) -> None:
            journal.start()

        app.on_startup.append(start)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--journal", type=Path, metavar="DB",
                        help="group-commit every body into this SQLite file before answering")
    args = parser.parse_args(argv)
    web.run_app(build_app(args.journal), host=args.host, port=args.port, access_log=None,
                print=None)


if __name__ == "__main__":
    main()
