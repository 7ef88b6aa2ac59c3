"""The ``imap_email`` source: what a poll does, what happens to a mail, and IDLE.

Each poll (the gateway's poller owns schedule, backoff and the lease that lets one
replica at a time poll a mailbox) opens a connection, and for each folder: SELECT,
compare UIDVALIDITY with the checkpoint (a change means the UIDs were renumbered: the
folder is read again from the start, or from the ``start_at`` day), ``UID SEARCH`` what
is above the checkpoint's UID (a folder read for the first time starts where
``start_at`` says: all its mail, mail arriving from now on, or mail since a day),
then per batch:

1. ``UID FETCH`` size and header of each mail (cheap);
2. a mail over ``max_message_mb`` is not downloaded: a quarantine entry records its
   folder, UID, sender, subject and size (once, even across rescans);
3. a mail whose source reference (Message-ID) this source has journaled already is not
   downloaded again: only the post-action is (re)done;
4. the others are downloaded (``BODY.PEEK[]``: reading does not flag them \\Seen) in groups
   of at most ``fetch_max_mb``; a mail the filters recognise (auto-reply, bounce,
   receipt, the gateway's own, a configured sender, by config a newsletter) is
   journaled as ``filtered`` with the reason; every other one goes to the poller,
   which journals it through the pipeline;
5. once a mail is journaled (never before) the post-action runs: none, ``\\Seen`` or move.

The checkpoint (``adapters/imap_email/cursor.py``) is committed after
each mail is durable, so a crash or a dropped connection re-reads at most a few mails, and
the replay check (source reference scoped per source) keeps them from becoming cases twice.

With ``idle: true`` and a server that has IDLE, one extra connection per folder waits
in IDLE and wakes the poller when mail arrives; it runs only while this replica is the
one polling (it stops soon after polls stop, e.g. when another replica holds the lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import TYPE_CHECKING, Any, Final, Literal

from adapters.imap_email.client import Fetched as ImapFetched
from adapters.imap_email.client import FolderInfo, ImapSession
from adapters.imap_email.cursor import Cursor
from adapters.imap_email.options import ImapEmailOptions
from gateway.intake.poller import Fetched, PolledAdapter
from gateway.intake.sources import AdapterEnv
from gateway.model.errors import SourceError, SourceMisconfigured
from gateway.model.schema import RawRecord
from gateway.support.config import SourceConfig
from gateway.support.connection_check import ConnectionCheck
from gateway.support.logging import get_logger
from normalizers.email import MEDIA_TYPE, address_of, header_text, message_ref, parse_message
from normalizers.email import filters as mail_filters

if TYPE_CHECKING:
    from gateway.intake.pipeline import IntakeResult, Outcome

log = get_logger("adapters.imap_email")

HEAD_ITEMS = "UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER]"
BODY_ITEMS = "UID BODY.PEEK[]"
OVERSIZED: Final = "oversized_mail"  # the action, and the quarantine reason
# What a batch does with a mail, decided from its header: quarantine it unread (over the
# size limit), only redo the post-action (journaled already), or download it.
MailAction = Literal["oversized_mail", "known", "download"]
_CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class _Mail:
    """One mail of a batch, from its header fetch."""

    head: ImapFetched
    header: Message
    ref: str
    action: MailAction


def _received_at(head: ImapFetched) -> datetime:
    """When the mailbox got the mail (INTERNALDATE), unless that is in the future."""
    now = datetime.now(UTC)
    when = head.internaldate
    return when if when is not None and when <= now + _CLOCK_SKEW else now


class ImapEmailSource(PolledAdapter[ImapEmailOptions]):
    channel = "email"
    default_format = "email"

    def __init__(self, config: SourceConfig, options: Any, env: AdapterEnv) -> None:
        super().__init__(config, options, env)
        self.poll_interval_s = self.options.poll_interval_s
        self.max_backoff_s = self.options.max_backoff_s
        self.lease_s = self.options.lease_s
        self._session: ImapSession | None = None
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._watch_retry_at: dict[str, float] = {}
        self._last_fetch = 0.0
        self.idling: set[str] = set()  # folders with a live IDLE connection (for status)

    @classmethod
    def set_aside(cls, payload: bytes, options: Mapping[str, Any]) -> dict[str, str] | None:
        """What this source would journal as ``filtered`` for the mail ``payload`` (an
        auto-reply, a bounce, our own mail), or ``None``: ``minsheng normalize`` asks."""
        source_options = ImapEmailOptions.model_validate(options) if options else None
        verdict = mail_filters.check_for_source(parse_message(payload, headers_only=True),
                                                source_options)
        return None if verdict is None else verdict.as_detail()

    async def stop(self) -> None:
        for task in self._watchers.values():
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        self._watchers.clear()
        await self._close_session()

    async def check_connection(self) -> ConnectionCheck:
        """Log in and look for every configured folder (STATUS: nothing is selected,
        read or flagged), for ``minsheng check-config --connect``."""
        session = ImapSession(self.options, self.name)
        try:
            await session.open()
            missing = [f for f in self.options.folders if not await session.folder_exists(f)]
        finally:
            await session.close()
        if missing:
            return ConnectionCheck.failed("登录成功，但文件夹不存在",
                                          f"logged in, but no folder {', '.join(missing)}")
        return ConnectionCheck.ok("登录成功", f"logged in to {session.where}, "
                                             f"{len(self.options.folders)} folder(s) found")

    # -- a poll ----------------------------------------------------------------------

    async def fetch(self, checkpoint: Any) -> AsyncIterator[Fetched]:
        self._last_fetch = time.monotonic()
        cursor = Cursor.load(checkpoint)
        await self._close_session()  # one left over by an interrupted poll
        session = self._session = ImapSession(self.options, self.name)
        try:
            await session.open()
            log.debug("imap_connected", source=self.name, server=session.where)
            if self.options.post_action == "move":
                await self._check_move_target(session)
            self._start_watchers(session.has_idle)
            for folder in self.options.folders:
                async for item in self._folder(session, folder, cursor):
                    yield item
        finally:
            if self._session is session:
                self._session = None
            await session.close()

    async def _check_move_target(self, session: ImapSession) -> None:
        target = str(self.options.move_to)
        if not await session.folder_exists(target):
            raise SourceMisconfigured(
                f"move_to folder {target!r} does not exist on {session.where} "
                "(目标文件夹不存在)")

    async def _folder(self, session: ImapSession, folder: str,
                      cursor: Cursor) -> AsyncIterator[Fetched]:
        info = await session.select(folder)
        last = cursor.last_uid(folder, info.uidvalidity)
        if last is None:
            if folder in cursor.folders:
                log.warning("imap_uidvalidity_changed", source=self.name, folder=folder,
                            was=cursor.folders[folder].get("uidvalidity"),
                            now=info.uidvalidity)
            last = await self._start(session, folder, info, cursor)
            cursor.advance(folder, info.uidvalidity, last)
        if info.uidnext is None or info.uidnext > last + 1:
            uids = await session.uids_after(last)
            size = self.options.batch_size
            for start in range(0, len(uids), size):
                async for item in self._batch(session, folder, info.uidvalidity,
                                              uids[start:start + size], cursor):
                    yield item
        await self._save(cursor)

    async def _start(self, session: ImapSession, folder: str, info: FolderInfo,
                     cursor: Cursor) -> int:
        """The UID before the first mail to read of a folder read for the first time (or
        renumbered): 0 for all its mail; with ``start_at``, the last UID there now (mail
        arriving from now on) or the one before the first mail received since a day. That
        day is kept in the checkpoint, so a renumbered folder is read again from it, not
        from its start (mail already journaled is skipped either way)."""
        since = cursor.since(folder)
        if since is None:
            start = self.options.start_at
            if start == "all":
                return 0
            since = datetime.now(self.env.timezone).date() if start == "new" else start
            cursor.start_since(folder, since)
            if start == "new":
                last = await self._newest_uid(session, info)
                log.info("imap_start_at", source=self.name, folder=folder, start_at="new",
                         after_uid=last)
                return last
        uids = await session.uids_since(since)
        last = uids[0] - 1 if uids else await self._newest_uid(session, info)
        log.info("imap_start_at", source=self.name, folder=folder, since=since.isoformat(),
                 after_uid=last)
        return last

    @staticmethod
    async def _newest_uid(session: ImapSession, info: FolderInfo) -> int:
        if info.uidnext is not None:
            return info.uidnext - 1
        return max(await session.uids_after(0), default=0)

    async def _batch(self, session: ImapSession, folder: str, uidvalidity: int,
                     uids: list[int], cursor: Cursor) -> AsyncIterator[Fetched]:
        mails = await self._plan(session, uids)
        bodies: dict[int, bytes] = {}
        for index, uid in enumerate(uids):
            mail = mails.get(uid)
            if mail is None:  # expunged meanwhile
                cursor.advance(folder, uidvalidity, uid)
                continue
            if mail.action == OVERSIZED:
                await self._quarantine_oversized(folder, uidvalidity, mail)
            elif mail.action == "known":
                await self._post_action(session, uid)
            else:
                if uid not in bodies:
                    bodies = await self._download(session, uids[index:], mails)
                raw = self._record(folder, uidvalidity, mail, bodies.pop(uid, None))
                if raw is not None and not await self._filtered(session, mail, raw):
                    cursor.advance(folder, uidvalidity, uid)
                    yield Fetched(raw, cursor.snapshot())
                    cursor.dirty = False
                    continue
            cursor.advance(folder, uidvalidity, uid)
        await self._save(cursor)

    async def _plan(self, session: ImapSession, uids: list[int]) -> dict[int, _Mail]:
        """Size and header of each mail, and what to do with it."""
        heads = await session.fetch(uids, HEAD_ITEMS)
        mails: dict[int, _Mail] = {}
        for head in heads:
            header = parse_message(head.sections.get("BODY[HEADER]", b""), headers_only=True)
            mails[head.uid] = _Mail(head, header, message_ref(header), "download")
        refs = [m.ref for m in mails.values()]
        known = await self.intake.services.journaled_refs(self.name, refs)
        seen: set[str] = set()
        for mail in sorted(mails.values(), key=lambda m: m.head.uid):  # a copy: the later
            if (mail.head.size or 0) > self.options.max_message_bytes:
                mail.action = OVERSIZED
            elif mail.ref in known or mail.ref in seen:
                mail.action = "known"
            seen.add(mail.ref)
        return mails

    async def _download(self, session: ImapSession, uids: list[int],
                        mails: dict[int, _Mail]) -> dict[int, bytes]:
        """The next group of mails to download, at most ``fetch_max_mb`` (at least one)."""
        group: list[int] = []
        budget = self.options.fetch_max_bytes
        for uid in uids:
            mail = mails.get(uid)
            if mail is None or mail.action != "download":
                continue
            size = mail.head.size or 0
            if group and size > budget:
                break
            group.append(uid)
            budget -= size
        found = await session.fetch(group, BODY_ITEMS)
        return {f.uid: f.sections["BODY[]"] for f in found if "BODY[]" in f.sections}

    def _record(self, folder: str, uidvalidity: int, mail: _Mail,
                data: bytes | None) -> RawRecord | None:
        if data is None:  # expunged between the two fetches
            return None
        return RawRecord(
            channel="email", source=self.name, source_ref=mail.ref, payload=data,
            content_type=MEDIA_TYPE, received_at=_received_at(mail.head),
            metadata={"folder": folder, "uidvalidity": uidvalidity, "uid": mail.head.uid,
                      "size": len(data), "fetched_at": datetime.now(UTC).isoformat()},
        )

    async def _save(self, cursor: Cursor) -> None:
        """Commit progress the poller has not committed (mails that were not yielded)."""
        if cursor.dirty:
            await self.intake.services.save_checkpoint(self.name, cursor.snapshot())
            cursor.dirty = False

    # -- what happens to a mail ----------------------------------------------------------

    async def after_journaled(self, fetched: Fetched, result: IntakeResult) -> None:
        if self._session is not None and fetched.record is not None:
            await self._post_action(self._session, int(fetched.record.metadata["uid"]))

    async def _post_action(self, session: ImapSession, uid: int) -> None:
        if self.options.post_action == "seen":
            await session.mark_seen(uid)
        elif self.options.post_action == "move":
            await session.move(uid, str(self.options.move_to))

    async def _filtered(self, session: ImapSession, mail: _Mail, raw: RawRecord) -> bool:
        """Journal ``raw`` as ``filtered`` if it is no complaint; True if it was."""
        verdict = mail_filters.check_for_source(mail.header, self.options)
        if verdict is None:
            return False
        await self.intake.record_filtered(raw, verdict.as_detail())
        await self._post_action(session, mail.head.uid)
        return True

    async def _quarantine_oversized(self, folder: str, uidvalidity: int, mail: _Mail) -> None:
        """A quarantine entry (no journal record: the mail was not downloaded), once."""
        services = self.intake.services
        if mail.ref in await services.quarantined_refs(self.name, OVERSIZED, "message_ref"):
            return
        detail = {
            "reason": "邮件超过大小上限，未下载 (mail over the size limit, not downloaded)",
            "folder": folder, "uidvalidity": uidvalidity, "uid": mail.head.uid,
            "size": mail.head.size, "limit": self.options.max_message_bytes,
            "from": address_of(mail.header, "from"),
            "subject": header_text(mail.header, "subject")[:200], "message_ref": mail.ref,
        }
        entry = await services.quarantine_item(self.name, OVERSIZED, detail)
        self._count("quarantined")
        log.warning("imap_mail_too_large", source=self.name, folder=folder,
                    uid=mail.head.uid, size=mail.head.size, quarantine_id=entry)

    def _count(self, outcome: Outcome) -> None:
        self.intake.count(self.name, outcome)

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- IDLE --------------------------------------------------------------------------

    def _idle_active(self) -> bool:
        """Polls are happening here (this replica holds the lease)."""
        return time.monotonic() - self._last_fetch < 2 * self.poll_interval_s + self.lease_s

    def _start_watchers(self, supported: bool) -> None:
        if not (self.options.idle and supported):
            return
        now = time.monotonic()
        for folder in self.options.folders:
            task = self._watchers.get(folder)
            if (task is None or task.done()) and now >= self._watch_retry_at.get(folder, 0):
                self._watchers[folder] = asyncio.create_task(
                    self._watch(folder), name=f"{self.name}:idle:{folder}")

    async def _watch(self, folder: str) -> None:
        """Wait in IDLE on ``folder`` and wake the poller when mail arrives."""
        session = ImapSession(self.options, self.name)
        cycle = min(self.options.idle_renew_s, max(30.0, 2 * self.poll_interval_s))
        established = False
        try:
            await session.open()
            await session.select(folder)
            log.info("imap_idle_started", source=self.name, folder=folder)
            self.idling.add(folder)
            while self._idle_active():
                if await session.idle(cycle):
                    self.wake()
                established = True
            log.info("imap_idle_stopped", source=self.name, folder=folder)
        except SourceError as exc:
            log.info("imap_idle_ended", source=self.name, folder=folder, error=str(exc))
            if established:  # a dropped connection: the poller finds out and reconnects
                self.wake()
            else:  # IDLE itself fails here: leave it for a while, polls go on
                self._watch_retry_at[folder] = time.monotonic() + min(self.poll_interval_s, 60)
        finally:
            self.idling.discard(folder)
            with contextlib.suppress(Exception):
                await session.close()
