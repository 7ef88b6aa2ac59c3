"""What went back to the citizen (``citizen_notices``, migration 9): one row per (case
code, channel).

Why a table of its own and not the outbox: an outbox entry is retried, replayed from the
dead letters, or enqueued again by a second sink of the same kind; the row here is what
makes all of those send nothing once the citizen has the message ("idempotent by case
code"). The recipient is kept only as a keyed digest (``IdentifierKeys.digest``), which
is enough for the other rule: at most one message per address per interval. Matching
takes every digest candidate, so a key rotation does not reset the interval.

Why a claim before sending (``claim``): the forwarders of two replicas may each hold a
case of the same address at once. Deciding by reading alone, both would find nothing
sent yet and both would send. The claim decides in a write transaction holding the
address's key lock (on SQLite the one writer), and records ``sending`` before the
message goes out: the other replica's claim then sees it and skips for the interval.
A claim left by a process that died before recording the outcome is taken over once
it is ``CLAIM_S`` old, so the message still goes out (at least once, as every delivery).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

from gateway.store.engine import Tx

# How a notice goes out: a reply mail, or an SMS.
NoticeChannel = Literal["email", "sms"]
# ``sending``: claimed by the sink sending it now; ``sent``: the citizen has it;
# ``skipped``: it was decided for good not to send (the interval rule), so a retry or a
# replay decides the same.
NoticeState = Literal["sending", "sent", "skipped"]
CLAIM_S = 300.0  # a claim this old was left by a sink that died: another may send


class Claim(StrEnum):
    """What ``claim`` decided for one case's notice."""

    SEND = "send"  # claimed: send it now, then ``mark_sent`` or ``release``
    SENT = "sent"  # sent already
    SKIPPED = "skipped"  # decided already not to send
    INTERVAL = "interval"  # decided now not to send: the address had one within the interval
    BUSY = "busy"  # another sink is sending it now: try again later

# Why a case got no notice (the citizen sinks, gateway/delivery/citizen/; the label of
# minsheng_citizen_notices_skipped_total).
SkipReason = Literal[
    "update",            # not a new case: an update or an event of one already notified
    "channel",           # a case of a channel this sink does not answer
    "not_wanted",        # reporter.reply_wanted is false
    "anonymous",         # reporter.anonymous
    "no_address",        # no e-mail address / phone number to send to
    "no_auto_reply",     # a list, bulk or newsletter mail (normalizers/email/bulk.py)
    "own_address",       # one of the gateway's own addresses
    "automated_sender",  # mailer-daemon@, postmaster@, no-reply@…
    "not_mobile",        # a number that takes no SMS (a landline)
    "interval",          # another notice went to the address within min_interval_hours
]
SKIP_REASONS: tuple[SkipReason, ...] = get_args(SkipReason)
# What became of an entry (the label of minsheng_citizen_notices_total).
NoticeOutcome = Literal["sent", "already_sent", "skipped", "failed"]
NOTICE_OUTCOMES: tuple[NoticeOutcome, ...] = get_args(NoticeOutcome)


@dataclass(frozen=True)
class Notice:
    case_code: str
    channel: NoticeChannel
    state: NoticeState
    reason: str | None
    at: float
    ref: str | None


def find(tx: Tx, case_code: str, channel: NoticeChannel) -> Notice | None:
    """The notice recorded for the case on the channel, if any."""
    row = tx.fetchone(
        "SELECT state, reason, at, ref FROM citizen_notices WHERE case_code = ? AND channel = ?",
        (case_code, channel),
    )
    if row is None:
        return None
    return Notice(case_code, channel, row[0], row[1], float(row[2]), row[3])


def sent_since(tx: Tx, channel: NoticeChannel, recipient_keys: Sequence[str],
               since: float) -> bool:
    """Whether a notice was sent (or is being sent) on ``channel`` to any of
    ``recipient_keys`` (the digests of one address under every accepted key) at or after
    ``since``."""
    if not recipient_keys:
        return False
    marks = ", ".join("?" for _ in recipient_keys)
    row = tx.fetchone(
        "SELECT 1 FROM citizen_notices WHERE channel = ? AND state IN ('sending', 'sent') "
        f"AND recipient_key IN ({marks}) AND at >= ? LIMIT 1",
        (channel, *recipient_keys, since),
    )
    return row is not None


def claim(tx: Tx, case_code: str, channel: NoticeChannel, recipient_key: str,
          interval_keys: Sequence[str], since: float, now: float | None = None) -> Claim:
    """Decide whether this sink sends the case's notice now (see the module's docstring).
    ``interval_keys``: the address's digests under every accepted key, empty when the
    sink has no interval; ``since``: the interval's start."""
    now = time.time() if now is None else now
    tx.lock_keys([f"notice:{channel}:{recipient_key}"])
    found = find(tx, case_code, channel)
    if found is not None:
        if found.state != "sending":
            return Claim.SENT if found.state == "sent" else Claim.SKIPPED
        if now - found.at < CLAIM_S:
            return Claim.BUSY
        tx.execute("UPDATE citizen_notices SET at = ? WHERE case_code = ? AND channel = ?",
                   (now, case_code, channel))  # a dead sender's claim: taken over
        return Claim.SEND
    if sent_since(tx, channel, interval_keys, since):
        record(tx, case_code, channel, "skipped", recipient_key, reason="interval", at=now)
        return Claim.INTERVAL
    record(tx, case_code, channel, "sending", recipient_key, at=now)
    return Claim.SEND


def mark_sent(tx: Tx, case_code: str, channel: NoticeChannel, ref: str) -> None:
    """The claimed notice went out: the citizen has it."""
    tx.execute("UPDATE citizen_notices SET state = 'sent', ref = ?, at = ? "
               "WHERE case_code = ? AND channel = ?", (ref, time.time(), case_code, channel))


def release(tx: Tx, case_code: str, channel: NoticeChannel) -> None:
    """The claimed notice could not be sent: no claim, so the retry decides again and the
    address's interval is not taken by a message it never got."""
    tx.execute("DELETE FROM citizen_notices WHERE case_code = ? AND channel = ? "
               "AND state = 'sending'", (case_code, channel))


def record(tx: Tx, case_code: str, channel: NoticeChannel, state: NoticeState,
           recipient_key: str, *, reason: str | None = None, ref: str | None = None,
           at: float | None = None) -> Notice:
    """Record a notice; the first one recorded for (case, channel) stays and is returned."""
    when = time.time() if at is None else at
    tx.execute(
        "INSERT INTO citizen_notices (case_code, channel, state, reason, recipient_key, at, "
        "ref) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_code, channel) DO NOTHING",
        (case_code, channel, state, reason, recipient_key, when, ref),
    )
    found = find(tx, case_code, channel)
    assert found is not None
    return found
