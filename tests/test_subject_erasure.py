"""A person's erasure and the retention purge, on SQLite and PostgreSQL, through a real
gateway: web submissions (one with a file) and a phone call with notes from two people,
and for the byte scan an e-mail, a mail the filters set aside and a feed entry of the
same person (every channel); one person is erased. Then the database files (SQLite's
file and WAL, PostgreSQL's relation files under base/), and the attachment tree hold
none of that person's bytes, the other person's data is whole, the sinks got an erasure
event, and the same submission sent again is answered ``erased`` and not filed."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.opinion.feeds import entry_records
from gateway.cli.subject import erase_subject
from gateway.intake.pipeline import SourceBinding
from gateway.model.normalize import NormalizerContext
from gateway.model.private_files import FILE_MODE
from gateway.model.schema import RawRecord
from gateway.ops.retention_job import purge
from gateway.server.app import Gateway, open_store
from gateway.store import Store
from gateway.store.subject import MAIL_TYPE, Subject, SubjectKind
from gateway.support import registry
from gateway.support.config import GatewayConfig
from normalizers.opinion.feed_entry import parse_feed
from tests.conftest import TEST_PRIVACY, base_url, gateway_config, sink_lines
from tests.pg import PostgresServer, create_database
from tests.procs import run_cli, write_config

PHONE, NAME, EMAIL = "13912345678", "黄秀英", "huang.xiuying@example.cn"
CALL_A = {"call_id": "call-a", "caller": PHONE, "callee": "12345",
          "started_at": "2024-05-06T09:30:00+08:00", "answered_at": "2024-05-06T09:30:08+08:00",
          "ended_at": "2024-05-06T09:34:00+08:00", "agent": "1024"}
NOTES_A = {"subject": "路面塌陷", "content": f"{NAME}反映正阳路路面塌陷。", "caller_name": NAME}
MISSED_CALL = {"call_id": "call-missed", "caller": "13700001111", "callee": "12345",
               "started_at": "2024-05-06T10:00:00+08:00",
               "ended_at": "2024-05-06T10:00:20+08:00", "disposition": "abandoned"}
OTHER_PHONE, OTHER_NAME = "13698765432", "司马光"
FILE_BYTES = "身份证照片 黄秀英 13912345678".encode()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode()


# The e-mail channel hides the person from a byte search: the name RFC 2047-encoded in
# the sender, the body in base64. Those encoded forms are needles too.
MAIL_BODY = f"我是{NAME}，手机 {PHONE}。\n小区二次供水水箱多年未清洗，水有异味。\n"
FILTERED_BODY = f"我正在休假，急事请拨打 {PHONE}。\n"
NEEDLES = (PHONE.encode(), NAME.encode("utf-8"), EMAIL.encode(), _b64(NAME).encode(),
           _b64(MAIL_BODY).encode(), _b64(FILTERED_BODY).encode())


def mail(ref: str, sender: str, subject: str, body: str, *extra: str) -> RawRecord:
    """A raw mail as the ``imap_email`` source journals it (adapters/imap_email)."""
    head = [f"From: =?UTF-8?B?{_b64(NAME)}?= <{sender}>", "To: hotline@12345.example.cn",
            f"Subject: =?UTF-8?B?{_b64(subject)}?=", "Date: Mon, 06 May 2024 10:00:00 +0800",
            f"Message-ID: <{ref}@example.cn>", "MIME-Version: 1.0", *extra,
            "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64"]
    data = ("\r\n".join(head) + "\r\n\r\n" + _b64(body) + "\r\n").encode()
    return RawRecord(channel="email", source="mail", source_ref=f"<{ref}@example.cn>",
                     payload=data, content_type=MAIL_TYPE, received_at=datetime.now(UTC),
                     metadata={"folder": "INBOX", "uidvalidity": 1, "uid": 1,
                               "size": len(data)})


FEED = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>城阳社区论坛</title><id>tag:forum.example.org,2024:board</id>
  <updated>2024-05-06T10:00:00+08:00</updated>
  <entry>
    <title>正阳路 88 号楼道堆物堵塞消防通道</title>
    <id>tag:forum.example.org,2024:post-5501</id>
    <link href="http://forum.example.org/thread-5501-1-1.html"/>
    <updated>2024-05-06T10:00:00+08:00</updated>
    <author><name>{NAME}</name><email>{EMAIL}</email></author>
    <content type="text">楼道堆满杂物，堵住消防通道。联系人{NAME}，电话 {PHONE}。</content>
  </entry>
</feed>""".encode()


async def fill_mail_and_feed(gw: Gateway) -> dict[str, str]:
    """The person on the e-mail and opinion channels, filed through the gateway's intake
    with the raw records their sources make (the real normalizers, no IMAP server or feed
    site needed); also an out-of-office reply from another address of theirs, which the
    mail filters set aside (journaled ``filtered``, no case). Their codes by name."""
    for name, fmt in (("mail", "email"), ("forum", "feed_entry")):
        gw.intake.bindings[name] = SourceBinding(
            registry.normalizer(fmt), NormalizerContext(name, gw.config.tz))
    codes: dict[str, str] = {}
    filed = await gw.intake.submit(mail("mail-a", EMAIL, "二次供水有异味", MAIL_BODY))
    assert filed.outcome == "new" and filed.case_code, filed
    codes["mail-a"] = filed.case_code
    [entry] = entry_records("forum", parse_feed(FEED, "application/atom+xml"), 10)
    filed = await gw.intake.submit(entry)
    assert filed.outcome == "new" and filed.case_code, filed
    codes["post-a"] = filed.case_code
    away = mail("mail-away", "hxy.work@example.com", "自动回复：休假", FILTERED_BODY,
                "Auto-Submitted: auto-replied")
    await gw.intake.record_filtered(away, {"filter": "auto_reply"})
    return codes


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own, so its data directory can be scanned."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'gateway.db'}"
    server: PostgresServer = request.getfixturevalue("own_pg")
    return create_database(server.url(), f"erase_{time.monotonic_ns()}")


def config_for(tmp_path: Path, url: str) -> GatewayConfig:
    return gateway_config(tmp_path, url, sources=[
        {"name": "web", "adapter": "web_mailbox"},
        {"name": "hotline", "adapter": "cdr_webhook", "format": "generic_json",
         "auth": {"scheme": "none"}},
    ])


@pytest.fixture
async def running(tmp_path: Path, engine_url: str) -> AsyncIterator[Gateway]:
    gw = Gateway(config_for(tmp_path, engine_url))
    await gw.start()
    try:
        yield gw
    finally:
        if gw.started:
            await gw.stop()


def form(sid: str, name: str, phone: str, text: str) -> dict[str, str]:
    return {"submission_id": sid, "name": name, "phone": phone, "email": EMAIL
            if name == NAME else "", "subject": "噪音扰民", "content": text,
            "address": "城阳区正阳路 88 号"}


async def fill(gw: Gateway) -> dict[str, str]:
    """Cases of both people on every channel this gateway takes; their codes by name."""
    codes: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=base_url(gw), timeout=30) as http:
        for sid, name, phone, text in [
            ("a-1", NAME, PHONE, f"我是{NAME}，电话 {PHONE}，楼下工地夜间施工。"),
            ("b-1", OTHER_NAME, OTHER_PHONE, "小区门口路灯一周不亮，请尽快维修。"),
        ]:
            answer = await http.post("/intake/web", json={
                k: v for k, v in form(sid, name, phone, text).items() if v})
            assert answer.status_code == 202, answer.text
            codes[sid] = answer.json()["case_code"]
        files = {"photo": ("证件.txt", FILE_BYTES, "text/plain")}
        answer = await http.post("/intake/web", data={
            "name": NAME, "phone": PHONE, "content": "垃圾清运不及时，附照片。",
            "submission_id": "a-2", "email": EMAIL}, files=files)
        assert answer.status_code == 202, answer.text
        codes["a-2"] = answer.json()["case_code"]
        assert (await http.post("/intake/hotline", json=CALL_A)).status_code < 300
        answer = await http.post("/intake/hotline/calls/call-a/notes", json=NOTES_A)
        assert answer.status_code < 300, answer.text
        codes["call-a"] = answer.json()["case_code"]
    return codes


def scan(paths: list[Path]) -> dict[str, list[str]]:
    """Which files under ``paths`` hold which needle."""
    found: dict[str, list[str]] = {}
    for root in paths:
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                hits = [n.decode() for n in NEEDLES if n in data]
                if hits:
                    found[str(path)] = hits
    return found


def pg_files(gw: Gateway, server: PostgresServer) -> list[Path]:
    """The database's relation files, after a checkpoint wrote every page out."""
    import psycopg

    with psycopg.connect(gw.config.store.url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()"
                           ).fetchone()
    assert oid is not None
    return [server.dir / "data" / "base" / str(oid[0]), server.dir / "data" / "global"]


def store_files(gw: Gateway, request: pytest.FixtureRequest) -> list[Path]:
    config = gw.config
    found = [config.attachments_dir]
    if config.store.url.startswith("sqlite"):
        db = Path(config.store.url.removeprefix("sqlite:///"))
        found += [p for p in (db, Path(f"{db}-wal")) if p.exists()]
    else:
        found += pg_files(gw, request.getfixturevalue("own_pg"))
    return found


async def test_erasure_leaves_no_bytes_and_a_replay_is_not_filed_again(
        running: Gateway, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    gw = running
    codes = await fill(gw)
    codes.update(await fill_mail_and_feed(gw))
    await sink_lines(tmp_path / "cases.jsonl", len(codes))
    stored = scan(store_files(gw, request))
    assert stored, "the person's bytes were stored to begin with"
    assert {n for hits in stored.values() for n in hits} == {n.decode() for n in NEEDLES}
    await gw.stop()

    report = await erase_subject(gw.config, Subject(SubjectKind.PHONE, f"+86 {PHONE}"),
                           "ticket 2024-17", "tester")
    assert report is not None
    theirs = ("a-1", "a-2", "call-a", "mail-a", "post-a")
    assert sorted(report["case_codes"]) == sorted(codes[k] for k in theirs)
    assert report["rows"]["cases"] == 5 and report["rows"]["calls"] == 1
    assert report["rows"]["raw_records"] == 7  # 2 forms, 2 call records, mail, post, reply
    assert report["attachment_files_deleted"] == 1
    assert report["erasure_events"] == 5  # one sink, five cases it received

    assert scan(store_files(gw, request)) == {}

    gw2 = Gateway(gw.config)
    await gw2.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(gw2), timeout=30) as http:
            again = await http.post("/intake/web", json={
                k: v for k, v in form("a-1", NAME, PHONE, "再次提交").items() if v})
            assert again.status_code == 200 and again.json() == {"outcome": "erased"}
            other = await http.post("/intake/web", json={
                k: v for k, v in form("b-1", OTHER_NAME, OTHER_PHONE, "重复").items() if v})
            assert other.json() == {"outcome": "replay", "case_code": codes["b-1"]}
            # The phone system sends the erased call's record and notes again: recognised,
            # joined to nothing, no call row and no case.
            for path, body in [("/intake/hotline", CALL_A),
                               ("/intake/hotline/calls/call-a/notes", NOTES_A)]:
                call_again = await http.post(path, json=body)
                assert call_again.status_code == 200, call_again.text
                assert call_again.json() == {"outcome": "erased", "call_id": "call-a"}
        calls_left = await gw2.store.read(lambda tx: tx.fetchall("SELECT call_id FROM calls"))
        assert calls_left == []
        lines = await sink_lines(tmp_path / "cases.jsonl", len(codes) + len(theirs))
        erased = sorted(line["case_code"] for line in lines if line.get("kind") == "erasure")
        assert erased == sorted(codes[k] for k in theirs)
        kept = await gw2.store.read(lambda tx: tx.fetchall("SELECT case_code FROM cases"))
        assert [r[0] for r in kept] == [codes["b-1"]]
    finally:
        await gw2.stop()
    assert scan(store_files(gw2, request)) == {}, "the replay stored nothing of the person"


def dumped(running: Gateway) -> dict[str, Any]:
    """The running gateway's config as a file's content. A dump shows secrets as
    asterisks, so the identifier key is put back."""
    raw: dict[str, Any] = json.loads(running.config.model_dump_json(exclude_none=True))
    raw["privacy"] = TEST_PRIVACY
    return raw


async def test_export_writes_an_owner_only_zip_of_everything_held(
        running: Gateway, tmp_path: Path) -> None:
    codes = await fill(running)
    await running.stop()
    config = write_config(tmp_path / "gateway.yaml", dumped(running))
    out = tmp_path / "export.zip"
    done = run_cli("subject", "export", "--email", EMAIL.upper(), "--out", str(out),
                   "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == FILE_MODE
    with zipfile.ZipFile(out) as zf:
        cases = json.loads(zf.read("cases.json"))
        assert sorted(c["case_code"] for c in cases) == sorted([codes["a-1"], codes["a-2"]])
        assert any(n.startswith("attachments/") and zf.read(n) == FILE_BYTES
                   for n in zf.namelist())
        assert any(NAME.encode() in zf.read(n) for n in zf.namelist() if n.startswith("raw/"))
    assert run_cli("subject", "export", "--email", "nobody@example.cn", "--out",
                   str(tmp_path / "none.zip"), "--config", str(config)).returncode == 1


async def test_retention_strips_delivered_cases_and_keeps_what_dedup_needs(
        running: Gateway, tmp_path: Path) -> None:
    codes = await fill(running)
    await sink_lines(tmp_path / "cases.jsonl", len(codes))
    async with httpx.AsyncClient(base_url=base_url(running), timeout=30) as http:
        refused = await http.post("/intake/web", json={"name": NAME, "phone": "1391",
                                                        "content": ""})
        assert refused.status_code == 422
        missed = await http.post("/intake/hotline", json=MISSED_CALL)  # counted, no case
        assert (missed.status_code, missed.json()["outcome"]) == (202, "recorded")
    store: Store = running.store
    assert sum((await purge(store, running.config)).values()) == 0  # nothing is due yet
    later = time.time() + running.config.retention.delivered_s + 60
    done = await purge(store, running.config, now=later)
    assert done["delivered_case"] == 4 and done["refused_raw"] == 1 and done["files"] == 1
    assert done["caseless_call"] == 1
    again = await purge(store, running.config, now=later)
    assert again["delivered_case"] == again["caseless_call"] == 0

    def read(tx: Any) -> tuple[list[Any], list[Any], list[Any]]:
        return (tx.fetchall("SELECT case_code, document, stripped_at FROM cases"),
                tx.fetchall("SELECT status, payload FROM raw_records"),
                tx.fetchall("SELECT caller, disposition, stripped_at IS NOT NULL FROM calls "
                            "ORDER BY id"))

    docs, raws, calls = await store.read(read)
    assert {r[0] for r in docs} == set(codes.values())
    for _, document, stripped_at in docs:
        doc = json.loads(document)
        assert stripped_at is not None and doc["body"] == "" and doc["attachments"] == []
        assert doc["case_code"] and doc["channel"] and doc["received_at"]
        assert NAME not in document and PHONE not in document
    assert [(s, bytes(p)) for s, p in raws if bytes(p)] == []
    # the KPIs keep what they count: the missed call's disposition and times
    assert calls == [(None, "answered", True), (None, "abandoned", True)]
    assert not list(running.config.attachments_dir.rglob("*/*"))
    # A late event of the missed call brings its number again: kept for a period anew.
    async with httpx.AsyncClient(base_url=base_url(running), timeout=30) as http:
        late = await http.post("/intake/hotline", json={**MISSED_CALL, "agent": "1025"})
        assert late.status_code < 300, late.text
    calls = (await store.read(read))[2]
    assert not calls[1][2]
    assert (await purge(store, running.config))["caseless_call"] == 0  # not yet due
    assert (await purge(store, running.config, now=later))["caseless_call"] == 1


# A process that runs an erasure or a purge and SIGKILLs itself at a chosen point: inside
# the transaction (a step of the erasure, the stripping of a chunk) or right after the
# commit, before the attachment files are deleted.
CRASHER = """
import asyncio, os, signal, sys
from gateway.support.config import load_config
from gateway.store import attachment_files, erasure, retention
from gateway.cli.subject import erase_subject
from gateway.ops import retention_job
from gateway.store.subject import Subject, SubjectKind

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

config = load_config(sys.argv[1])
point = sys.argv[2]
if point == "erase-step":
    erasure.STEPS.insert(len(erasure.STEPS) - 1, ("die", die))
if point == "purge-chunk":
    original = retention.strip_cases
    def strip_then_die(tx, ids, now):
        original(tx, ids, now)
        die()
    retention.strip_cases = strip_then_die
if point in ("erase-files", "purge-files"):
    attachment_files.delete_queued = die
    retention_job.attachment_files.delete_queued = die
if point.startswith("erase"):
    asyncio.run(erase_subject(config, Subject(SubjectKind.PHONE, sys.argv[3]), "t", "t"))
else:
    from gateway.store import Store

    async def run_purge():
        store = Store.from_url(config.store.url)
        await store.start()
        await retention_job.purge(store, config)

    asyncio.run(run_purge())
"""


async def held(url: str) -> tuple[int, int, int]:
    """(cases, raw records with a payload, stripped cases) in the store."""
    store = Store.from_url(url)
    await store.start()
    try:
        return await store.read(lambda tx: (
            int(tx.fetchone("SELECT COUNT(*) FROM cases")[0]),
            int(tx.fetchone("SELECT COUNT(*) FROM raw_records WHERE LENGTH(payload) > 0")[0]),
            int(tx.fetchone("SELECT COUNT(*) FROM cases WHERE stripped_at IS NOT NULL")[0])))
    finally:
        await store.close()


@pytest.mark.parametrize("point", ["erase-step", "erase-files"])
async def test_a_killed_erasure_leaves_before_or_after(
        running: Gateway, tmp_path: Path, point: str) -> None:
    await fill(running)
    await sink_lines(tmp_path / "cases.jsonl", 4)
    await running.stop()
    url = running.config.store.url
    before = await held(url)
    config = write_config(tmp_path / "gw.yaml", dumped(running))
    done = subprocess.run([sys.executable, "-c", CRASHER, str(config), point, PHONE],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    files = list(running.config.attachments_dir.rglob("*/*"))
    if point == "erase-step":  # killed inside the transaction: all is there
        assert await held(url) == before and len(files) == 1
        return
    # killed after the commit: the rows are gone, the file waits in the queue
    assert (await held(url))[0] == 1 and len(files) == 1
    store = Store.from_url(url)
    await store.start()
    try:
        queued = await store.read(lambda tx: tx.fetchall(
            "SELECT COUNT(*) FROM attachment_deletions"))
        assert queued[0][0] == 1
    finally:
        await store.close()
    later = time.time()  # the next purge (or erasure) finishes the deletion
    store = Store.from_url(url)
    await store.start()
    try:
        assert (await purge(store, running.config, now=later))["files"] == 1
    finally:
        await store.close()
    assert not list(running.config.attachments_dir.rglob("*/*"))


@pytest.mark.parametrize("point", ["purge-chunk", "purge-files"])
async def test_a_killed_purge_leaves_before_or_after(
        running: Gateway, tmp_path: Path, point: str) -> None:
    await fill(running)
    await sink_lines(tmp_path / "cases.jsonl", 4)
    await running.stop()
    raw = dumped(running)
    raw["retention"]["delivered_days"] = 0
    config = write_config(tmp_path / "gw.yaml", raw)
    url = running.config.store.url
    before = await held(url)
    done = subprocess.run([sys.executable, "-c", CRASHER, str(config), point],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    files = list(running.config.attachments_dir.rglob("*/*"))
    if point == "purge-chunk":
        assert await held(url) == before and len(files) == 1
        return
    assert await held(url) == (4, 0, 4) and len(files) == 1
    done = subprocess.run([sys.executable, "-m", "gateway", "retention", "run", "--config",
                           str(config)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["files"] == 1
    assert not list(running.config.attachments_dir.rglob("*/*"))


def oversize_detail(sender: str, subject: str) -> dict[str, Any]:
    """A quarantine entry's detail as the ``imap_email`` source writes it for a mail over
    ``max_message_mb`` (adapters/imap_email/source.py): never downloaded, no raw record."""
    return {"reason": "邮件超过大小上限，未下载 (mail over the size limit, not downloaded)",
            "folder": "INBOX", "uidvalidity": 1, "uid": 7, "size": 40_000_000,
            "limit": 26_214_400, "from": sender, "subject": subject,
            "message_ref": f"<{subject}@example.cn>"}


async def test_an_oversize_mails_entry_is_exported_and_erased_by_its_sender(
        running: Gateway, tmp_path: Path) -> None:
    """The entry of a mail never downloaded names its sender: it is the person's data,
    found by the address (any case) although no raw record or case holds it."""
    services = running.intake.services
    theirs = await services.quarantine_item("mail", "oversized_mail",
                                            oversize_detail(EMAIL.upper(), "二次供水"))
    others = await services.quarantine_item("mail", "oversized_mail",
                                            oversize_detail("someone@example.com", "路灯"))
    await running.stop()
    config = write_config(tmp_path / "gateway.yaml", dumped(running))
    out = tmp_path / "export.zip"
    done = run_cli("subject", "export", "--email", EMAIL, "--out", str(out),
                   "--config", str(config))
    assert done.returncode == 0, done.stderr  # held: the entry alone
    with zipfile.ZipFile(out) as zf:
        entries = json.loads(zf.read("quarantine.json"))
        assert json.loads(zf.read("cases.json")) == []
    assert [e["id"] for e in entries] == [theirs]
    assert entries[0]["detail"]["from"] == EMAIL.upper()

    report = await erase_subject(running.config, Subject(SubjectKind.EMAIL, EMAIL),
                                 "ticket 2024-18", "tester")
    assert report is not None and report["rows"]["quarantine"] == 1
    left = await quarantine_ids(running.config)
    assert left == [others]


async def quarantine_ids(config: GatewayConfig) -> list[int]:
    store = open_store(config)
    await store.start()
    try:
        rows = await store.read(lambda tx: tx.fetchall("SELECT id FROM quarantine ORDER BY id"))
    finally:
        await store.close()
    return [int(r[0]) for r in rows]
