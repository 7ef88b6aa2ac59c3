"""Finding everything the gateway holds about one person: by phone number, e-mail
address or case code (``minsheng subject export|erase``, docs/personal-data.md).

By case code it is a look-up. By phone or e-mail nothing is indexed in clear (that is
the point of keyed identifiers), so the case documents, the raw payloads, the call
rows and the quarantine entries without a raw record are scanned in chunks of
``SCAN_CHUNK`` rows by id, each chunk one read: a rare operation, run by an operator.
A phone number matches any run of digits in the text that is the same national number
(``+86 138 0013 8000``, ``13800138000``, ``0532-88776655`` / ``+8653288776655``); an
e-mail address matches case-insensitively.
A case mentioning the number in its free text (a neighbour's number) is that person's
data too and is found as well.

A raw e-mail (``message/rfc822``) is matched on its bytes and on its decoded text too:
RFC 2047 headers (``=?UTF-8?B?…?=``) and base64 or quoted-printable bodies hide a name
or a number from a byte search, and a mail the filters set aside (an auto-reply) has no
case document that would name the person instead. The standard library's ``email``
package decodes it: the store stays free of the channel's normalizers.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.store.engine import Tx

SCAN_CHUNK = 500
MAIL_TYPE = "message/rfc822"  # the e-mail channel's raw records (normalizers/email)
_DIGIT_RUN = re.compile(r"\+?\d[\d \-().]{5,}\d")


class SubjectKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    CASE_CODE = "case_code"


def national_number(text: str) -> str:
    """Digits of a Chinese phone number without country prefix and trunk zero."""
    digits = "".join(c for c in text if c.isdigit())
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 10:
            digits = digits[len(prefix):]
            break
    return digits.lstrip("0")


@dataclass(frozen=True)
class Subject:
    """Who is asked for: one phone number, e-mail address or case code."""

    kind: SubjectKind
    value: str

    def __post_init__(self) -> None:
        if self.kind is SubjectKind.PHONE and len(national_number(self.value)) < 7:
            raise ValueError("a phone number needs at least 7 digits")
        if self.kind is SubjectKind.EMAIL and "@" not in self.value:
            raise ValueError("not an e-mail address")

    def mentioned_in(self, text: str) -> bool:
        if self.kind is SubjectKind.PHONE:
            wanted = national_number(self.value)
            return any(national_number(run) == wanted for run in _DIGIT_RUN.findall(text))
        if self.kind is SubjectKind.EMAIL:
            return self.value.strip().lower() in text.lower()
        return False


@dataclass
class Holdings:
    """The rows that are the person's: cases, raw records, calls, and quarantine entries
    that have no raw record (an over-size mail, never downloaded, whose entry keeps its
    sender and subject), by id."""

    case_ids: set[int] = field(default_factory=set)
    raw_ids: set[int] = field(default_factory=set)
    call_ids: set[int] = field(default_factory=set)
    quarantine_ids: set[int] = field(default_factory=set)


def _text(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def mail_texts(payload: bytes) -> list[str]:
    """A raw mail's headers and text parts, decoded (RFC 2047, base64, quoted-printable,
    the part's charset); nothing for what cannot be read as a mail."""
    try:
        message = email.message_from_bytes(payload, policy=email.policy.default)
        texts: list[str] = []
        for part in message.walk():  # the message itself first, then each part
            texts += [str(value) for value in part.values()]
            if part.get_content_maintype() == "text":
                texts.append(str(part.get_content()))
    except Exception:  # a broken mail: its bytes were matched already
        return []
    return texts


def _columns(row: Sequence[object]) -> list[str]:
    return [_text(v) for v in row[2:]]


def _raw_columns(row: Sequence[object]) -> list[str]:
    """A raw record's (id, case id, content type, payload, other text…) as texts."""
    texts = [_text(v) for v in row[3:]]
    if row[2] == MAIL_TYPE and isinstance(row[3], (bytes, bytearray, memoryview)):
        texts += mail_texts(bytes(row[3]))
    return texts


def _scan(tx: Tx, sql: str, subject: Subject,
          texts: Callable[[Sequence[object]], list[str]] = _columns,
          ) -> list[tuple[int, int | None]]:
    """(id, case id) of every row of ``sql`` (selecting id, case id, text columns…, with
    ``id > ? ORDER BY id LIMIT ?``) whose text (``texts`` of the row) mentions
    ``subject``; chunk by chunk."""
    found, last = [], 0
    while True:
        rows = tx.fetchall(sql, (last, SCAN_CHUNK))
        for row in rows:
            if any(subject.mentioned_in(text) for text in texts(row)):
                found.append((int(row[0]), None if row[1] is None else int(row[1])))
        if len(rows) < SCAN_CHUNK:
            return found
        last = int(rows[-1][0])


def find(tx: Tx, subject: Subject) -> Holdings:
    """Everything held about ``subject``, with each found case's raw records and call."""
    held = Holdings()
    if subject.kind is SubjectKind.CASE_CODE:
        row = tx.fetchone("SELECT id FROM cases WHERE case_code = ?",
                          (subject.value.strip().upper(),))
        if row is not None:
            held.case_ids.add(int(row[0]))
    else:
        for case_id, _ in _scan(tx, "SELECT id, id, document FROM cases WHERE id > ? "
                                "ORDER BY id LIMIT ?", subject):
            held.case_ids.add(case_id)
        for raw_id, raw_case in _scan(tx, "SELECT id, case_id, content_type, payload, "
                                     "metadata, idempotency_key, source_ref FROM raw_records "
                                     "WHERE id > ? ORDER BY id LIMIT ?", subject,
                                     _raw_columns):
            held.raw_ids.add(raw_id)
            if raw_case is not None:
                held.case_ids.add(raw_case)
        for call_id, call_case in _scan(tx, "SELECT id, case_id, caller, state FROM calls "
                                      "WHERE id > ? ORDER BY id LIMIT ?", subject):
            held.call_ids.add(call_id)
            if call_case is not None:
                held.case_ids.add(call_case)
        # An entry with a raw record goes with that record; one without is matched alone.
        for entry_id, _ in _scan(tx, "SELECT id, NULL, detail FROM quarantine WHERE "
                                 "raw_id IS NULL AND id > ? ORDER BY id LIMIT ?", subject):
            held.quarantine_ids.add(entry_id)
        if held.raw_ids:  # a case whose journaled record names the person
            for chunk in _chunks(sorted(held.raw_ids)):
                rows = tx.fetchall(f"SELECT id FROM cases WHERE raw_id IN ({_marks(chunk)})",
                                   chunk)
                held.case_ids.update(int(r[0]) for r in rows)
    for chunk in _chunks(sorted(held.case_ids)):
        marks = _marks(chunk)
        held.raw_ids.update(int(r[0]) for r in tx.fetchall(
            f"SELECT id FROM raw_records WHERE case_id IN ({marks}) OR id IN "
            f"(SELECT raw_id FROM cases WHERE id IN ({marks}))", [*chunk, *chunk]))
        held.call_ids.update(int(r[0]) for r in tx.fetchall(
            f"SELECT id FROM calls WHERE case_id IN ({marks})", chunk))
    for chunk in _chunks(sorted(held.call_ids)):  # a call's records carry its call id
        held.raw_ids.update(int(r[0]) for r in tx.fetchall(
            "SELECT r.id FROM raw_records r JOIN calls c ON c.source = r.source AND "
            f"c.call_id = r.source_ref WHERE c.id IN ({_marks(chunk)})", chunk))
    return held


def _marks(values: list[int]) -> str:
    return ", ".join("?" for _ in values)


def _chunks(values: list[int], size: int = 400) -> list[list[int]]:
    return [values[i:i + size] for i in range(0, len(values), size)]
