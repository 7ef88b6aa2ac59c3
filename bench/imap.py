"""E-mail intake benchmark: a mailbox of a few thousand mails on a local Dovecot.

    .venv/bin/python bench/imap.py [--mails 3000] [--samples 20] [--post-action none]
                                   [--batch-size 50] [--json]

Starts a throwaway Dovecot on loopback (tests/dovecot.py: IMAPS with a test CA), APPENDs
``--mails`` distinct complaint mails (a mix of UTF-8, GBK base64, GB2312 quoted-printable
and HTML, a quarter with a small attachment), then starts the gateway as its own process
(``python -m gateway run``: SQLite store, an ``imap_email`` source with IDLE, a jsonl
sink) and reports:

- **ingest**: mails/s from the gateway's start until every mail is journaled (the
  mailbox read in batches, each mail parsed, normalized, deduplicated and filed);
- **IDLE latency**: ``--samples`` times, one mail APPENDed to the idle mailbox and the
  time until its case is committed (p50, p90, max); beside it, the server's own share:
  the time from APPEND to Dovecot's IDLE announcement on a bare connection (Dovecot
  batches change notifications for about half a second).

A benchmark, not a test: it exits 0 once it has run (2 if it could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import quopri
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from adapters.imap_email.client import ImapSession  # noqa: E402  (the repo is put first)
from adapters.imap_email.options import ImapEmailOptions  # noqa: E402
from tests import dovecot  # noqa: E402
from tests.dovecot import Dovecot, Mailbox  # noqa: E402
from tests.pg import free_port  # noqa: E402
from tests.procs import GatewayProcess  # noqa: E402

TOPICS = ["小区门口烧烤摊油烟扰民", "路灯不亮", "井盖缺失", "公交站牌损坏", "夜间施工噪音",
          "垃圾清运不及时", "电梯频繁故障", "占道经营", "下水道堵塞", "违章停车堵消防通道"]
STREETS = ["幸福路", "人民路", "建设街", "滨河路", "光明路", "和平路", "朝阳路", "新华街"]


def complaint(n: int) -> bytes:
    """Mail ``n``: distinct text (no two are duplicates), in one of four encodings."""
    topic, street = TOPICS[n % len(TOPICS)], STREETS[(n // 7) % len(STREETS)]
    text = (f"您好：\n{street}{n % 300 + 1}号附近{topic}，已经持续{n % 9 + 2}天。"
            f"编号{n}的反映，请相关部门尽快处理。\n" + "具体情况说明。" * (n % 40) + "\n谢谢！\n")
    head = (f"From: =?utf-8?B?{base64.b64encode(f'市民{n}'.encode()).decode()}?= "
            f"<citizen{n}@example.cn>\r\nTo: hotline@12345.example.cn\r\n"
            f"Subject: =?utf-8?B?{base64.b64encode(topic.encode()).decode()}?=\r\n"
            f"Date: Mon, 02 Dec 2019 09:00:00 +0800\r\nMessage-ID: <bench-{n}@example.cn>\r\n"
            "MIME-Version: 1.0\r\n")
    kind = n % 4
    if kind == 0:
        body = ("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit"
                f"\r\n\r\n{text}").encode()
    elif kind == 1:
        encoded = base64.encodebytes(text.encode("gbk")).decode()
        body = ("Content-Type: text/plain; charset=gb2312\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}").encode()
    elif kind == 2:
        encoded = quopri.encodestring(text.encode("gbk")).decode()
        body = ("Content-Type: text/plain; charset=gbk\r\n"
                f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{encoded}").encode()
    else:
        html = "".join(f"<p>{line}</p>" for line in text.splitlines())
        body = ("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit"
                f"\r\n\r\n<html><body>{html}</body></html>").encode()
    if n % 4 == 3:  # a quarter carry a small photo
        photo = base64.encodebytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8).decode()
        body = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + body +
                b"\r\n--b\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; "
                b"filename=photo.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
                photo.encode() + b"\r\n--b--\r\n")
    return head.encode() + body


async def fill(server: Dovecot, user: str, count: int, connections: int = 4) -> float:
    """APPEND ``count`` mails over a few connections; returns the seconds it took."""
    started = time.perf_counter()

    async def worker(first: int) -> None:
        async with Mailbox(server, user) as box:
            for n in range(first, count, connections):
                await box.append(complaint(n))

    await asyncio.gather(*(worker(i) for i in range(connections)))
    return time.perf_counter() - started


def gateway_config(tmp: Path, server: Dovecot, user: str, port: int,
                   args: argparse.Namespace) -> Path:
    source: dict[str, Any] = {
        "name": "mail", "adapter": "imap_email", "host": "127.0.0.1",
        "port": server.imaps_port, "ca_file": str(server.ca_file), "username": user,
        "password": "${BENCH_IMAP_PASSWORD}", "idle": True, "poll_interval_s": 300,
        "batch_size": args.batch_size, "post_action": args.post_action,
    }
    if args.post_action == "move":
        source["move_to"] = "Done"
    raw = {
        "region_code": "CY", "data_dir": str(tmp / "var"),
        "server": {"listen": f"127.0.0.1:{port}"},
        "store": {"url": f"sqlite:///{tmp / 'gateway.db'}"},
        "log": {"format": "json", "level": "warning"},
        "sources": [source],
        "sinks": [{"name": "file", "kind": "jsonl", "path": str(tmp / "cases.jsonl")}],
    }
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet
        return 0


async def wait_for(db: Path, sql: str, target: int, timeout: float, step: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if count(db, sql) >= target:
            return True
        await asyncio.sleep(step)
    return False


async def latency(server: Dovecot, user: str, db: Path, samples: int, base: int) -> list[float]:
    """APPEND one mail at a time to the idle mailbox; seconds until its case exists."""
    found: list[float] = []
    async with Mailbox(server, user) as box:
        for i in range(samples):
            before = count(db, "SELECT COUNT(*) FROM cases")
            await asyncio.sleep(0.3)  # let the IDLE connection settle between samples
            started = time.perf_counter()
            await box.append(complaint(base + i))
            if await wait_for(db, "SELECT COUNT(*) FROM cases", before + 1, 30, 0.002):
                found.append(time.perf_counter() - started)
    return found


async def push_delay(server: Dovecot, user: str, samples: int) -> list[float]:
    """The server's own share of the latency: APPEND until IDLE announces it (Dovecot
    batches change notifications for half a second)."""
    options = ImapEmailOptions.model_validate({
        "host": "127.0.0.1", "port": server.imaps_port, "ca_file": str(server.ca_file),
        "username": user, "password": server.password, "folders": ["Scratch"]})
    session = ImapSession(options, "bench")
    found: list[float] = []
    async with Mailbox(server, user) as box:
        await box.create("Scratch")
        await session.open()
        try:
            await session.select("Scratch")
            for n in range(samples):
                idle = asyncio.ensure_future(session.idle(30))
                await asyncio.sleep(0.3)
                started = time.perf_counter()
                await box.append(complaint(10_000_000 + n), "Scratch")
                if await idle:
                    found.append(time.perf_counter() - started)
        finally:
            await session.close()
    return found


def _ms(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    if not ordered:
        return {"samples": 0}
    return {"samples": len(ordered), "p50": round(statistics.median(ordered) * 1000, 1),
            "p90": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1),
            "max": round(ordered[-1] * 1000, 1)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = Dovecot()
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="minsheng-bench-imap-"))
    proc: GatewayProcess | None = None
    try:
        user = server.add_user()
        if args.post_action == "move":
            async with Mailbox(server, user) as box:
                await box.create("Done")
        append_s = await fill(server, user, args.mails)
        port = free_port()
        proc = GatewayProcess(gateway_config(tmp, server, user, port, args), tmp / "gw.log",
                              f"http://127.0.0.1:{port}",
                              env={"BENCH_IMAP_PASSWORD": server.password})
        db = tmp / "gateway.db"
        started = time.perf_counter()
        proc.start()
        done = await wait_for(db, "SELECT COUNT(*) FROM raw_records", args.mails, 600, 0.05)
        ingest_s = time.perf_counter() - started
        cases = count(db, "SELECT COUNT(*) FROM cases")
        await proc.wait_ready()
        lat = await latency(server, user, db, args.samples, args.mails)
        push = await push_delay(server, server.add_user(), min(args.samples, 10))
        return {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"Python {platform.python_version()}",
            "mails": args.mails, "append_s": round(append_s, 2),
            "ingest_complete": done, "ingest_s": round(ingest_s, 2),
            "mails_per_s": round(args.mails / ingest_s, 1), "cases": cases,
            "post_action": args.post_action, "batch_size": args.batch_size,
            "idle_latency_ms": _ms(lat), "server_push_delay_ms": _ms(push),
        }
    finally:
        if proc is not None and proc.alive:
            proc.terminate()
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mails", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--post-action", choices=["none", "seen", "move"], default="none")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if not dovecot.available():
        print("dovecot-imapd is not installed: make system-deps", file=sys.stderr)
        return 2
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    lat = result["idle_latency_ms"]
    print(f"machine: {result['machine']}")
    print(f"mailbox: {result['mails']} mails APPENDed in {result['append_s']} s")
    print(f"ingest:  {result['mails_per_s']} mails/s ({result['ingest_s']} s for "
          f"{result['mails']} mails, {result['cases']} cases, post_action "
          f"{result['post_action']}, batch {result['batch_size']})"
          + ("" if result["ingest_complete"] else "  [INCOMPLETE]"))
    push = result["server_push_delay_ms"]
    print(f"IDLE:    APPEND → case p50 {lat.get('p50')} ms, p90 {lat.get('p90')} ms, "
          f"max {lat.get('max')} ms over {lat['samples']} mails")
    print(f"         of which Dovecot's own APPEND → IDLE push: p50 {push.get('p50')} ms "
          f"over {push['samples']} mails")
    return 0


if __name__ == "__main__":
    sys.exit(main())
