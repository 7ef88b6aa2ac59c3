"""The ``imap_email`` source against a real Dovecot: mail APPENDed, ingested, nothing
twice across restarts, a UIDVALIDITY change, a connection dropped mid-fetch, the
post-actions, over-size and filtered mail, several folders, IDLE, and the source shown
down while the server is down.

Each test has its own mailbox (a spare Dovecot user) and its own store.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import ValidationError

from adapters.imap_email.options import ImapEmailOptions
from gateway.intake.health import SourceStatus
from gateway.intake.pipeline import IntakeResult
from gateway.intake.poller import Poller
from gateway.intake.sources import AdapterEnv
from gateway.model.attachments import AttachmentStore
from gateway.model.errors import SourceMisconfigured, SourceUnavailable
from gateway.model.schema import RawRecord
from gateway.server.app import Gateway, build_intake, open_store
from gateway.store import checkpoints
from gateway.support import registry
from tests import dovecot
from tests.conftest import base_url, gateway_config
from tests.dovecot import Dovecot, Mailbox

pytestmark = pytest.mark.skipif(not dovecot.available(),
                                reason="dovecot-imapd is not installed (make test installs it)")

FIXTURES = Path(__file__).parent / "fixtures" / "email"
PASSWORD_ENV = "MINSHENG_TEST_IMAP_PASSWORD"


@pytest.fixture
def imap(dovecot_server: Dovecot, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dovecot]:
    """The shared server, its password in the environment; running again afterwards even
    if a test stopped it."""
    monkeypatch.setenv(PASSWORD_ENV, dovecot_server.password)
    yield dovecot_server
    if dovecot_server.proc is None:
        dovecot_server.start()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def citizen_mail(n: int, *, folder_hint: str = "", size: int = 0) -> bytes:
    """A plain complaint, distinct per ``n`` (so dedup sees different matters)."""
    padding = "\n" + "补充说明。" * (size // 15) if size else ""
    body = (f"第{n}号反映：幸福路{n}号门前的下水道堵塞{n}天了，污水漫到路面{folder_hint}。"
            f"{padding}\n")
    return (f"From: citizen{n}@example.cn\r\nTo: hotline@12345.example.cn\r\n"
            f"Subject: =?utf-8?B?5LiL5rC06YGT5aC15aGe?= {n}\r\n"
            f"Date: Mon, 02 Dec 2019 09:{n % 60:02d}:00 +0800\r\n"
            f"Message-ID: <citizen-{n}@example.cn>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
            f"\r\n{body}").encode()


def source(server: Dovecot, user: str, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "mail", "adapter": "imap_email", "host": "127.0.0.1",
        "port": server.imaps_port, "ca_file": str(server.ca_file), "username": user,
        "password": f"${{{PASSWORD_ENV}}}", "idle": False, "poll_interval_s": 0.5,
        "timeout_s": 10, "own_addresses": ["hotline@12345.example.cn"],
    }
    raw.update(overrides)
    return raw


class Rig:
    """Store, intake, the source and a poller, driven one poll at a time."""

    def __init__(self, tmp_path: Path, store_url: str, options: dict[str, Any]) -> None:
        self.config = gateway_config(tmp_path, store_url, sources=[options])

    async def __aenter__(self) -> Rig:
        config = self.config
        self.store = open_store(config)
        await self.store.start()
        self.intake = build_intake(config, self.store)
        spec = config.source("mail")
        cls = registry.adapter_class("imap_email")
        env = AdapterEnv(AttachmentStore(config.attachments_dir), config.data_dir, config.tz)
        self.adapter = cls(spec, cls.Options.model_validate(spec.options), env)
        await self.adapter.start(self.intake)
        status = SourceStatus()
        status.register("mail", "pull")
        self.poller = Poller(self.store, self.intake, status)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.adapter.stop()
        await self.store.close()

    async def poll(self) -> int:
        return await self.poller.poll_once(self.adapter)  # type: ignore[arg-type]

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return await self.store.read(lambda tx: tx.fetchall(sql, params))

    async def case_refs(self) -> list[str]:
        return sorted(r[0] for r in await self.rows("SELECT source_ref FROM cases"))

    async def journal(self) -> list[tuple[str, str, Any]]:
        rows = await self.rows("SELECT status, source_ref, detail FROM raw_records ORDER BY id")
        return [(r[0], r[1], json.loads(r[2]) if r[2] else None) for r in rows]

    async def checkpoint(self) -> Any:
        return await self.store.read(lambda tx: checkpoints.get(tx, "mail"))


async def append_all(server: Dovecot, user: str, mails: list[bytes],
                     folder: str = "INBOX") -> None:
    async with Mailbox(server, user) as box:
        for data in mails:
            await box.append(data, folder)


async def flags(server: Dovecot, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
    async with Mailbox(server, user) as box:
        return await box.flags(folder)


async def test_ingest_then_restart_ingests_nothing_twice(
    imap: Dovecot, tmp_path: Path, store_url: str
) -> None:
    user = imap.add_user()
    await append_all(imap, user, [
        fixture("gb2312_with_gbk_chars.eml"), fixture("big5_hkscs.eml"),
        fixture("nested_multipart.eml"), fixture("no_message_id.eml"),
        fixture("auto_reply.eml"), fixture("bounce_dsn.eml"), fixture("self_sent.eml"),
    ])
    options = source(imap, user)
    async with Rig(tmp_path, store_url, options) as rig:
        assert await rig.poll() == 4
        refs = await rig.case_refs()
        assert len(refs) == 4 and "<big5-hkscs-1@example.hk>" in refs
        filtered = [(ref, d["filter"]) for status, ref, d in await rig.journal()
                    if status == "filtered"]
        assert sorted(filtered) == [("<ack-13@12345.example.cn>", "self_sent"),
                                    ("<auto-10@agency.example.cn>", "auto_reply"),
                                    ("<dsn-12@mx.12345.example.cn>", "bounce")]
        assert rig.intake.counts[("mail", "filtered")] == 3
        cp = await rig.checkpoint()
        assert cp["folders"]["INBOX"]["uid"] == 7 and cp["folders"]["INBOX"]["uidvalidity"]
        documents = [json.loads(r[0]) for r in await rig.rows("SELECT document FROM cases")]
        nested = next(d for d in documents if d["source_ref"] == "<nested-7@example.cn>")
        stored = AttachmentStore(rig.config.attachments_dir)
        for attachment in nested["attachments"]:
            assert len(stored.read(attachment["sha256"])) == attachment["size"]
        assert await rig.poll() == 0
        journaled = len(await rig.journal())
    assert all("\\Seen" not in f for f in (await flags(imap, user)).values())  # untouched

    async with Rig(tmp_path, store_url, options) as rig:  # a restarted gateway
        assert await rig.poll() == 0
        await append_all(imap, user, [citizen_mail(1)])
        assert await rig.poll() == 1
        # a crash before the checkpoint was committed: everything is read again, but
        # what is journaled already is neither journaled nor filed again
        await rig.store.write(lambda tx: tx.execute("DELETE FROM checkpoints"))
        assert await rig.poll() == 0
        assert len(await rig.journal()) == journaled + 1
        assert len(await rig.case_refs()) == 5


async def test_uidvalidity_change_rescans_without_double_cases(
    imap: Dovecot, tmp_path: Path
) -> None:
    user = imap.add_user()
    await append_all(imap, user, [citizen_mail(1), citizen_mail(2),
                                  fixture("no_message_id.eml")])
    async with Rig(tmp_path, f"sqlite:///{tmp_path}/gw.db", source(imap, user)) as rig:
        assert await rig.poll() == 3
        before = (await rig.checkpoint())["folders"]["INBOX"]
        imap.reset_uidvalidity("INBOX", user)
        assert await rig.poll() == 0
        after = (await rig.checkpoint())["folders"]["INBOX"]
        assert after["uidvalidity"] != before["uidvalidity"] and after["uid"] == 3
        assert len(await rig.journal()) == 3 and len(await rig.case_refs()) == 3
        await append_all(imap, user, [citizen_mail(3)])
        assert await rig.poll() == 1
        assert len(await rig.case_refs()) == 4


async def test_connection_dropped_mid_fetch_then_caught_up(
    imap: Dovecot, tmp_path: Path
) -> None:
    user = imap.add_user()
    await append_all(imap, user, [citizen_mail(n) for n in range(1, 7)])
    options = source(imap, user, batch_size=2, post_action="seen")
    async with Rig(tmp_path, f"sqlite:///{tmp_path}/gw.db", options) as rig:
        submit = rig.intake.submit
        reached, resume = asyncio.Event(), asyncio.Event()
        calls = 0

        async def paused_submit(raw: RawRecord, **kwargs: Any) -> IntakeResult:
            nonlocal calls
            calls += 1
            if calls == 3:  # the third mail: the server goes away while it is journaled
                reached.set()
                await resume.wait()
            return await submit(raw, **kwargs)

        rig.intake.submit = paused_submit  # type: ignore[method-assign]
        poll = asyncio.create_task(rig.poll())
        await asyncio.wait_for(reached.wait(), 30)
        imap.stop()
        resume.set()
        with pytest.raises(SourceUnavailable, match="IMAP"):
            await asyncio.wait_for(poll, 60)
        journaled = len(await rig.journal())
        assert 3 <= journaled < 6
        assert (await rig.checkpoint())["folders"]["INBOX"]["uid"] == 2  # \Seen of 3 failed
        imap.start()
        rig.intake.submit = submit  # type: ignore[method-assign]
        assert await rig.poll() == 6 - journaled
        assert len(await rig.case_refs()) == 6 and len(await rig.journal()) == 6
    seen = await flags(imap, user)
    assert len(seen) == 6 and all("\\Seen" in f for f in seen.values())


@pytest.mark.parametrize("action", ["seen", "move"])
async def test_post_actions_run_once_journaled(imap: Dovecot, tmp_path: Path,
                                               action: str) -> None:
    user = imap.add_user()
    big = citizen_mail(9, size=30_000)
    async with Mailbox(imap, user) as box:
        await box.create("已处理")
        # a complaint, a second copy of it (same Message-ID), an auto-reply, a big one
        for data in (citizen_mail(1), citizen_mail(1), fixture("auto_reply.eml"), big):
            await box.append(data)
    options = source(imap, user, post_action=action, move_to="已处理", max_message_mb=0.02)
    async with Rig(tmp_path, f"sqlite:///{tmp_path}/gw.db", options) as rig:
        assert await rig.poll() == 1
        assert len(await rig.journal()) == 2  # the complaint once, the auto-reply
    inbox, done = await flags(imap, user), await flags(imap, user, "已处理")
    if action == "seen":
        assert all("\\Seen" in inbox[uid] for uid in (1, 2, 3))
        assert "\\Seen" not in inbox[4] and not done  # the over-size mail is left alone
    else:
        assert list(inbox) == [4] and len(done) == 3


async def test_move_to_a_missing_folder_is_misconfigured(imap: Dovecot, tmp_path: Path) -> None:
    user = imap.add_user()
    options = source(imap, user, post_action="move", move_to="Nowhere")
    async with Rig(tmp_path, f"sqlite:///{tmp_path}/gw.db", options) as rig:
        with pytest.raises(SourceMisconfigured, match="Nowhere"):
            await rig.poll()


async def test_oversized_mail_is_quarantined_once_not_downloaded(
    imap: Dovecot, tmp_path: Path
) -> None:
    user = imap.add_user()
    await append_all(imap, user, [citizen_mail(1, size=60_000), citizen_mail(2)])
    options = source(imap, user, max_message_mb=0.05)  # 52 kB
    async with Rig(tmp_path, f"sqlite:///{tmp_path}/gw.db", options) as rig:
        assert await rig.poll() == 1
        rows = await rig.rows("SELECT raw_id, reason, detail FROM quarantine")
        assert len(rows) == 1
        raw_id, reason, detail = rows[0][0], rows[0][1], json.loads(rows[0][2])
        assert raw_id is None and reason == "oversized_mail"
        assert detail["uid"] == 1 and detail["from"] == "citizen1@example.cn"
        assert detail["size"] > 52_000 and detail["folder"] == "INBOX"
        assert [ref for _, ref, _ in await rig.journal()] == ["<citizen-2@example.cn>"]
        imap.reset_uidvalidity("INBOX", user)  # a rescan does not add it again
        assert await rig.poll() == 0
        assert len(await rig.rows("SELECT id FROM quarantine")) == 1
        assert (await rig.checkpoint())["folders"]["INBOX"]["uid"] == 2


async def test_several_folders_each_with_its_checkpoint(imap: Dovecot, tmp_path: Path) -> None:
    user = imap.add_user()
    async with Mailbox(imap, user) as box:
        await box.create("投诉")
        await box.append(citizen_mail(1))
        await box.append(citizen_mail(2), "投诉")
        await box.append(citizen_mail(3), "投诉")
    options = source(imap, user, folders=["INBOX", "投诉"])
    async with Rig(tmp_path, f"sqlite:///{tmp_path}/gw.db", options) as rig:
        assert await rig.poll() == 3
        folders = (await rig.checkpoint())["folders"]
        assert folders["INBOX"]["uid"] == 1 and folders["投诉"]["uid"] == 2
        metadata = [json.loads(r[0]) for r in await rig.rows(
            "SELECT metadata FROM raw_records ORDER BY id")]
        assert [m["folder"] for m in metadata] == ["INBOX", "投诉", "投诉"]


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout:g} s: {what}")


@pytest.fixture
async def gateway_with_idle(imap: Dovecot, tmp_path: Path) -> AsyncIterator[tuple[Gateway, str]]:
    user = imap.add_user()
    config = gateway_config(tmp_path, f"sqlite:///{tmp_path}/gw.db", sources=[
        source(imap, user, idle=True, poll_interval_s=300, max_backoff_s=4)])
    gw = Gateway(config)
    await gw.start()
    try:
        yield gw, user
    finally:
        await gw.stop()


async def test_idle_brings_new_mail_and_a_restart_is_caught_up(
    imap: Dovecot, gateway_with_idle: tuple[Gateway, str]
) -> None:
    gw, user = gateway_with_idle
    adapter: Any = gw.adapters["mail"]

    async def cases() -> int:
        return int((await gw.store.read(lambda tx: tx.fetchone("SELECT COUNT(*) FROM cases")))[0])

    async def state() -> str:
        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            body = (await client.get("/readyz")).json()
        return str(body["sources"]["mail"]["state"])

    async def idling() -> bool:
        return "INBOX" in adapter.idling and await state() == "up"

    await _until(idling, 30, "the first poll and an IDLE connection")
    # polls are 300 s apart: a case within seconds can only come through IDLE
    await append_all(imap, user, [citizen_mail(1)])
    await _until(lambda: _eq(cases(), 1), 20, "the mail appended during IDLE filed")

    imap.stop()  # the IDLE connection drops; the poller finds the server gone

    async def down() -> bool:
        return await state() == "down"

    await _until(down, 30, "the source shown down")
    imap.start()
    await append_all(imap, user, [citizen_mail(2)])
    await _until(lambda: _eq(cases(), 2), 40, "the reconnect catching up")
    await _until(idling, 30, "the source up and in IDLE again")


async def _eq(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_start_at_new_skips_the_history_of_a_mailbox(imap: Dovecot, tmp_path: Path) -> None:
    user = imap.add_user()
    await append_all(imap, user, [citizen_mail(1), citizen_mail(2)])  # years of history
    options = source(imap, user, start_at="new")
    async with Rig(tmp_path, f"sqlite:///{tmp_path}/gw.db", options) as rig:
        assert await rig.poll() == 0
        folder = (await rig.checkpoint())["folders"]["INBOX"]
        assert folder["uid"] == 2
        assert folder["since"] == datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
        await append_all(imap, user, [citizen_mail(3)])
        assert await rig.poll() == 1
        assert await rig.case_refs() == ["<citizen-3@example.cn>"]


async def test_start_at_a_day_and_a_renumbered_folder_later(imap: Dovecot, tmp_path: Path) -> None:
    user = imap.add_user()
    async with Mailbox(imap, user) as box:
        await box.append(citizen_mail(1), received=datetime(2026, 10, 1, 9, 0, tzinfo=UTC))
        await box.append(citizen_mail(2), received=datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
        await box.append(citizen_mail(3), received=datetime(2026, 11, 3, 9, 0, tzinfo=UTC))
    options = source(imap, user, start_at="2026-11-01")
    async with Rig(tmp_path, f"sqlite:///{tmp_path}/gw.db", options) as rig:
        assert await rig.poll() == 2
        assert await rig.case_refs() == ["<citizen-2@example.cn>", "<citizen-3@example.cn>"]
        assert (await rig.checkpoint())["folders"]["INBOX"]["since"] == "2026-11-01"
        imap.reset_uidvalidity("INBOX", user)  # renumbered: read again from the day only
        assert await rig.poll() == 0
        assert len(await rig.journal()) == 2  # mail 1 was never read, not even now


async def test_start_at_a_day_with_no_mail_since_then(imap: Dovecot, tmp_path: Path) -> None:
    user = imap.add_user()
    async with Mailbox(imap, user) as box:
        await box.append(citizen_mail(1), received=datetime(2026, 10, 1, 9, 0, tzinfo=UTC))
    async with Rig(tmp_path, f"sqlite:///{tmp_path}/gw.db",
                   source(imap, user, start_at="2026-11-01")) as rig:
        assert await rig.poll() == 0
        assert (await rig.checkpoint())["folders"]["INBOX"]["uid"] == 1
        await append_all(imap, user, [citizen_mail(2)])
        assert await rig.poll() == 1


def test_start_at_must_be_all_new_or_a_day() -> None:
    with pytest.raises(ValidationError) as caught:
        ImapEmailOptions.model_validate({"host": "127.0.0.1", "username": "u",
                                         "password": "p", "start_at": "yesterday"})
    assert "start_at" in str(caught.value)
