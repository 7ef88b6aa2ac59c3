"""What went back to the citizen (``citizen_notices``, migration 9): one row per (case
code, channel).

Why a table of its own and not the outbox: an outbox entry is retried, replayed from the
dead letters, or enqueued again by a second sink of the same kind; the row here is what
makes all of those send nothing once the citizen has the message ("idempotent by case
code"). The recipient is kept only as a keyed digest (``IdentifierKeys.digest``), which
is enough for the other rule: at most one message per address per interval. Matching
takes every digest candidate, so a key rotation does not reset the interval.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from gateway.store.engine import Tx

# How a notice goes out: a reply mail, or an SMS.
NoticeChannel = Literal["email", "sms"]
# ``sent``: the citizen has it; ``skipped``: it was decided for good not to send (the
# interval rule), so a retry or a replay decides the same.
NoticeState = Literal["sent", "skipped"]

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
    """Whether a notice was sent on ``channel`` to any of ``recipient_keys`` (the digests
    of one address under every accepted key) at or after ``since``."""
    if not recipient_keys:
        return False
    marks = ", ".join("?" for _ in recipient_keys)
    row = tx.fetchone(
        "SELECT 1 FROM citizen_notices WHERE channel = ? AND state = 'sent' "
        f"AND recipient_key IN ({marks}) AND at >= ? LIMIT 1",
        (channel, *recipient_keys, since),
    )
    return row is not None


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
