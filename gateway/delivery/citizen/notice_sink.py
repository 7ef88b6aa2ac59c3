"""What the two citizen sinks share: deciding whether a case gets a notice, sending it at
most once per case, at most once per address per interval, and counting every decision.

The order for each outbox entry, oldest first:

1. Not a new case (an update, an event): skipped. A citizen hears once per case.
2. The sink's ``recipient`` decides: an address of the right kind, or a ``Skip`` with
   why (no reply wanted, anonymous, no address, a list mail, the gateway's own
   address…). Skipped entries count as delivered for the outbox: nothing is owed.
3. A notice already recorded for (case code, channel): nothing is sent again. This is
   what makes a retried, replayed or re-enqueued entry harmless.
4. Another notice sent (or being sent) to the same address (its keyed digest) within
   ``min_interval_hours``: recorded as skipped (``interval``), so a retry decides the same.
5. Else the notice is claimed (``sending``), steps 3–5 in one write transaction holding
   the address's lock (``citizen_notices.claim``), so two replicas' forwarders holding
   two cases of one address do not both send. Then send, and record it sent. A failure
   is a ``SinkError`` the forwarder retries or dead-letters; the claim is released. A
   crash between sending and recording sends once more on the retry: at least once,
   like every delivery.

Entries of one batch are handled one after the other, so two cases of one writer in a
batch see each other's record (the interval rule holds within a batch too).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from gateway.delivery.citizen.case_facts import CaseFacts, NotACase
from gateway.delivery.citizen.templates import MessageTemplate, NoticeValues
from gateway.delivery.sinks.base import Outcome, Sink, SinkEnv
from gateway.model.errors import ConfigError, PermanentSinkError, RetriableSinkError, SinkError
from gateway.store import Store, StoreUnavailable, citizen_notices
from gateway.store.citizen_notices import Claim, NoticeChannel, NoticeOutcome, SkipReason
from gateway.store.outbox import Delivery
from gateway.support.config import GatewayConfig
from gateway.support.keyed_ids import IdentifierKeys, IdKind
from gateway.support.logging import get_logger

log = get_logger("gateway.citizen")

class NoticeOptions(BaseModel):
    """The options both citizen sinks have: the message, and how often one address may
    get one (0: no limit)."""

    model_config = ConfigDict(extra="forbid")

    template: MessageTemplate
    min_interval_hours: float = Field(default=24.0, ge=0, le=24 * 365)


NoticeOptionsT = TypeVar("NoticeOptionsT", bound=NoticeOptions)


@dataclass(frozen=True)
class Skip:
    reason: SkipReason


class CitizenSink(Sink[NoticeOptionsT]):
    """Base of ``citizen_email`` and ``citizen_sms``. Subclasses say their channel and
    identifier kind, pick the recipient and send one message."""

    answers_the_reporter = True

    notice_channel: ClassVar[NoticeChannel]
    id_kind: ClassVar[IdKind]

    def __init__(self, config: Any, options: Any) -> None:
        super().__init__(config, options)
        self.outcomes: Counter[NoticeOutcome] = Counter()
        self.skipped: Counter[SkipReason] = Counter()
        self._env: SinkEnv | None = None
        self._keys: IdentifierKeys | None = None

    # -- what a subclass provides ------------------------------------------------------

    @property
    def template(self) -> MessageTemplate:
        return self.options.template

    @property
    def min_interval_s(self) -> float:
        return self.options.min_interval_hours * 3600.0

    def recipient(self, case: CaseFacts) -> str | Skip:
        raise NotImplementedError

    async def send(self, case: CaseFacts, address: str, values: NoticeValues) -> str:
        """Send one message; return a reference to log (a Message-ID, a provider id)."""
        raise NotImplementedError

    # -- the shared part ---------------------------------------------------------------

    def bind(self, env: SinkEnv) -> None:
        self._env = env
        self._keys = env.config.privacy.keys(env.config.data_dir)

    @property
    def env(self) -> SinkEnv:
        if self._env is None:
            raise ConfigError([f"sink {self.name}: not bound to a gateway (bind first)"])
        return self._env

    @property
    def gateway_config(self) -> GatewayConfig:
        return self.env.config

    @property
    def store(self) -> Store:
        return self.env.store

    def values(self, case: CaseFacts) -> NoticeValues:
        config = self.gateway_config
        return NoticeValues.for_case(case.case_code, case.received_at, config.api.public_url,
                                     config.tz)

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for delivery in batch:
            try:
                outcomes.append(await self._one(delivery))
            except StoreUnavailable as exc:
                outcomes.append(RetriableSinkError(f"store unavailable: {exc}"))
        return outcomes

    async def _one(self, delivery: Delivery) -> Outcome:
        if delivery.kind != "case":
            return self._skip(delivery.case_code, "update")
        try:
            case = CaseFacts.from_body(delivery.body)
        except NotACase as exc:
            self._count("failed", delivery.case_code)
            return PermanentSinkError(str(exc))
        who = self.recipient(case)
        if isinstance(who, Skip):
            return self._skip(case.case_code, who.reason)
        channel, code = self.notice_channel, case.case_code
        assert self._keys is not None
        digest = self._keys.digest(self.id_kind, who)
        interval_keys = self._keys.candidates(self.id_kind, who) if self.min_interval_s else []
        since = time.time() - self.min_interval_s
        decided = await self.store.write(lambda tx: citizen_notices.claim(
            tx, code, channel, digest, interval_keys, since))
        if decided is Claim.SENT:
            self._count("already_sent", code)
            return None
        if decided is Claim.SKIPPED:
            self._count("skipped", code)
            return None
        if decided is Claim.INTERVAL:
            return self._skip(code, "interval")
        if decided is Claim.BUSY:
            return RetriableSinkError(f"the notice of {code} is being sent by another sink")
        try:
            ref = await self.send(case, who, self.values(case))
        except Exception as exc:  # not sent: the retry decides again
            await self.store.write(lambda tx: citizen_notices.release(tx, code, channel))
            if not isinstance(exc, SinkError):
                raise
            self._count("failed", code, error=str(exc))
            return exc
        await self.store.write(lambda tx: citizen_notices.mark_sent(tx, code, channel, ref[:250]))
        self._count("sent", code, ref=ref)
        return None

    def _skip(self, case_code: str | None, reason: SkipReason) -> Outcome:
        self.skipped[reason] += 1
        self._count("skipped", case_code, reason=reason)
        return None

    def _count(self, outcome: NoticeOutcome, case_code: str | None, **detail: str) -> None:
        """Count and log one decision: the case code and why, never the address."""
        self.outcomes[outcome] += 1
        log.info("citizen_notice", sink=self.name, channel=self.notice_channel,
                 case_code=case_code, outcome=outcome, **detail)
