"""The look-up by case code: what a citizen asks (a case code and the last four digits of
the phone number, or the e-mail address, the case was filed with), how it is matched and
what the answer holds. The API (``POST /v1/lookup``) and the page (``GET|POST /lookup``)
both go through ``LookupService`` (gateway/server/lookup_route.py wires them).

Against enumeration, a question that matches nothing gets one answer whatever failed
(no such code, wrong digits, a case without a phone number) and does the same work: the
digests are always computed under every accepted key, the same two queries always run
(the look-up row and the status history of the code asked), every candidate is always
compared with ``hmac.compare_digest`` (against a stand-in when there is no row), and
nothing returns early. Both rate limits (per client address, per case code) are taken
before any of it.

The answer holds nothing personal: the code, when and through which channel it came, and
the statuses (without the platform's free text, which may quote the citizen).
"""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.intake.ratelimit import RateLimiter, too_many
from gateway.intake.shared_buckets import BucketArena
from gateway.model.case_status import CaseStatus
from gateway.model.casecode import InvalidCaseCode, format_code, parse_code
from gateway.model.errors import FieldError, Rejected
from gateway.store import Store, Tx, lookup, statuses
from gateway.store.lookup import LookupRow
from gateway.support import problem
from gateway.support.keyed_ids import IdentifierKeys, IdKind
from gateway.support.logging import get_logger
from gateway.support.lookup_config import LookupConfig

log = get_logger("gateway.lookup")

FIELDS = ("case_code", "phone_last4", "email")
MAX_CODE_CHARS = 64
MAX_EMAIL_CHARS = 254
# What an unmatched digest is compared with: a digest is 64 hex digits, this never is one.
_STAND_IN = "-" * 64
TOO_MANY = "查询过于频繁，请稍后再试 (too many look-ups, try again later)"
NO_MATCH = ("未找到匹配的案件。请核对案件编号，以及提交时所留电话号码的后四位（或电子邮箱）。",
            "No case matches. Check the case code, and the last four digits of the phone "
            "number (or the e-mail address) you gave when you wrote.")
HistoryStatus = Literal["received"] | CaseStatus
LABELS: dict[HistoryStatus, tuple[str, str]] = {
    "received": ("已受理", "received"),
    "accepted": ("已接办", "accepted"),
    "assigned": ("已转交承办单位", "passed to a department"),
    "replied": ("已答复", "replied"),
    "closed": ("已办结", "closed"),
    "reopened": ("重新办理", "reopened"),
}
CHANNELS: dict[str, tuple[str, str]] = {
    "phone": ("电话", "phone"), "web": ("网上信箱", "web mailbox"),
    "email": ("电子邮件", "e-mail"), "opinion": ("网络舆情", "public opinion"),
}


@dataclass(frozen=True)
class LookupQuery:
    """A checked question: the code as printed and what proves the case is the asker's."""

    case_code: str
    kind: IdKind  # PHONE_LAST4 or EMAIL
    value: str


def _error(field: str, code: str, zh: str, en: str) -> FieldError:
    return FieldError(field, code, zh, en)


def code_error(text: str, region: str) -> FieldError | None:
    """Why ``text`` is no case code of this centre (layout, date, check character);
    None when it is one. Says nothing about whether such a case exists."""
    try:
        parse_code(text, region)
    except InvalidCaseCode as exc:
        zh, _, en = str(exc).partition(" (")
        return _error("case_code", "invalid", f"案件编号有误：{zh}",
                      f"not a valid case code: {en.removesuffix(')') or zh}")
    return None


def _text(fields: Mapping[str, object], name: str, errors: list[FieldError]) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.append(_error(name, "not_text", "必须是文本", "must be a string"))
        return ""
    return value.strip()


def parse_query(fields: object, region: str) -> LookupQuery:
    """The question in ``fields`` (a JSON object, or the page's form); ``Rejected``
    naming every field that is wrong. Exactly one of ``phone_last4`` and ``email``."""
    if not isinstance(fields, dict):
        raise Rejected.one("body", "not_object", "请求体必须是 JSON 对象",
                           "the body must be a JSON object")
    errors = [_error(str(k)[:64], "unknown_field", "未知字段", "unknown field")
              for k in fields if k not in FIELDS]
    code = unicodedata.normalize("NFKC", _text(fields, "case_code", errors)).upper()
    digits = unicodedata.normalize("NFKC", _text(fields, "phone_last4", errors))
    email = _text(fields, "email", errors)
    if not code:
        errors.append(_error("case_code", "required", "请填写案件编号",
                             "the case code is required"))
    elif len(code) > MAX_CODE_CHARS:
        errors.append(_error("case_code", "too_long", f"不超过 {MAX_CODE_CHARS} 个字符",
                             f"at most {MAX_CODE_CHARS} characters"))
    elif (wrong := code_error(code, region)) is not None:
        errors.append(wrong)
    if digits and email:
        errors.append(_error("email", "one_of", "电话号码后四位和电子邮箱只填一项",
                             "give the last four digits or the e-mail address, not both"))
    elif not digits and not email:
        errors.append(_error("phone_last4", "required",
                             "请填写电话号码后四位（或电子邮箱）",
                             "give the last four digits of the phone number (or the "
                             "e-mail address)"))
    elif digits and not (len(digits) == 4 and digits.isascii() and digits.isdigit()):
        errors.append(_error("phone_last4", "four_digits", "请填写 4 位数字",
                             "four digits, e.g. 8000"))
    elif email and (len(email) > MAX_EMAIL_CHARS or email.count("@") != 1
                    or any(c.isspace() for c in email) or email.startswith("@")
                    or email.endswith("@")):
        errors.append(_error("email", "invalid", "电子邮箱格式不正确",
                             "not an e-mail address"))
    if errors:
        raise Rejected(errors)
    parsed = parse_code(code, region)  # valid: spelled as the gateway prints codes
    printed = format_code(parsed.region, parsed.day, parsed.channel, parsed.sequence)
    if digits:
        return LookupQuery(printed, IdKind.PHONE_LAST4, digits)
    return LookupQuery(printed, IdKind.EMAIL, email)


@dataclass(frozen=True)
class HistoryEntry:
    status: HistoryStatus
    at: str
    department: str | None

    def as_json(self) -> dict[str, Any]:
        zh, en = LABELS[self.status]
        return {"status": self.status, "label_zh": zh, "label_en": en, "at": self.at,
                "department": self.department}


@dataclass(frozen=True)
class LookupAnswer:
    """What a matched look-up shows: nothing personal."""

    case_code: str
    channel: str
    received_at: str
    history: list[HistoryEntry]

    def as_json(self) -> dict[str, Any]:
        zh, en = CHANNELS.get(self.channel, (self.channel, self.channel))
        return {"case_code": self.case_code, "received_at": self.received_at,
                "channel": self.channel, "channel_zh": zh, "channel_en": en,
                "status_history": [e.as_json() for e in self.history]}


def _answer(row: LookupRow, history: list[statuses.StatusEntry], tz: ZoneInfo) -> LookupAnswer:
    received = datetime.fromtimestamp(row.received_at, UTC).astimezone(tz)
    received_text = received.isoformat(timespec="seconds")
    entries = [HistoryEntry(e.status, e.at_text, e.department) for e in history]
    if not entries:  # until the platform says anything: received
        entries = [HistoryEntry("received", received_text, None)]
    return LookupAnswer(row.case_code, row.channel, received_text, entries)


class LookupService:
    """The limits, the keys and the matching; one per running gateway."""

    def __init__(self, config: LookupConfig, store: Store, keys: IdentifierKeys,
                 tz: ZoneInfo, region: str, buckets: BucketArena | None = None) -> None:
        """``buckets``: the rate limits' memory, the one every worker of the machine shares
        (``server.workers``), so guessing through every worker gets no more tries than the
        limits say; by default the service's own."""
        self.config = config
        self.store = store
        self.keys = keys
        self.tz = tz
        self.region = region
        buckets = buckets or BucketArena()
        per_code = config.per_code.as_rate_limit()
        self.per_client = RateLimiter(config.per_client, buckets=buckets.table(
            "lookup:client", config.per_client.max_clients))
        self.per_code = RateLimiter(per_code, buckets=buckets.table(
            "lookup:code", per_code.max_clients))

    def client_refusal(self, request: web.Request) -> web.Response | None:
        """429 when the asking address has used up its tries; None to go on."""
        verdict = self.per_client.check(self.per_client.client(request))
        if verdict.allowed:
            return None
        if verdict.first_refusal:
            log.warning("lookup_limited", per="client")
        return too_many(verdict.retry_after_s, TOO_MANY)

    def code_refusal(self, query: LookupQuery) -> web.Response | None:
        """429 when the code asked has had its tries, from whichever addresses."""
        verdict = self.per_code.take(query.case_code)
        if verdict.allowed:
            return None
        if verdict.first_refusal:
            log.warning("lookup_limited", per="code", case_code=query.case_code)
        return too_many(verdict.retry_after_s, TOO_MANY)

    async def find(self, query: LookupQuery) -> LookupAnswer | None:
        """The answer when the case exists and the digits (or address) match; None
        otherwise, after the same work either way (see the module's docstring)."""
        code = query.case_code
        candidates = self.keys.candidates(query.kind, query.value, scope=code)

        def read(tx: Tx) -> tuple[LookupRow | None, list[statuses.StatusEntry]]:
            return lookup.find(tx, code), statuses.history(tx, code)

        row, history = await self.store.read(read)
        stored = (row.digest_of(query.kind) if row is not None else None) or _STAND_IN
        matched = False
        for candidate in candidates:
            matched |= hmac.compare_digest(candidate, stored)
        log.info("lookup", matched=matched)
        if row is None or not matched:
            return None
        return _answer(row, history, self.tz)


def no_match() -> web.Response:
    """The one answer of every question that matches nothing."""
    return problem.problem(404, "no-match", "未找到匹配的案件 (no matching case)",
                           f"{NO_MATCH[0]} / {NO_MATCH[1]}")


async def fill_rows(store: Store, keys: IdentifierKeys) -> int:
    """Give every case filed before migration 8 its look-up row, a chunk per transaction;
    how many were filled (0 once done: each start-up checks with one query)."""
    total = 0
    while filled := await store.write(lambda tx: lookup.backfill(tx, keys)):
        total += filled
    if total:
        log.info("lookup_rows_filled", cases=total)
    return total
