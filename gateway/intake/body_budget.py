"""Request bodies: a budget of bytes in flight, so concurrent big posts cannot exhaust
memory, and a read that stops at a limit.

Eight concurrent 29 MiB posts to the web mailbox took the process from 260 to 915 MB of
RSS (and it stayed there: the allocator keeps what it got). Each push source now takes
its request's declared size (``Content-Length``, or its ``max_body_kb`` for a chunked
body) from its budget (``limits.body_budget_mb``) before reading a byte, and gives it back
when the answer is ready. A request that cannot get its bytes within
``limits.body_wait_s`` is answered 429 with ``Retry-After``: the sender retries later,
nothing is read, nothing journaled.
"""

from __future__ import annotations

import asyncio
import math

from aiohttp import web

from gateway.model.input_limits import InputLimits
from gateway.support import problem


async def read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` (chunked bodies too)."""
    declared = request.content_length
    if declared is not None and declared <= limit and not request.headers.get(
            "Transfer-Encoding"):
        # The parser ends the body at its Content-Length: it cannot outgrow the limit,
        # so it is read whole (cheaper than chunk by chunk, the usual form post).
        return await request.content.read()
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class BudgetExhausted(Exception):
    """No budget within the wait: answer ``busy()``."""


class BodyBudget:
    """Bytes of request bodies one source may hold at once."""

    def __init__(self, limits: InputLimits) -> None:
        self.capacity = max(1, int(limits.body_budget_mb * 1024 * 1024))
        self.wait_s = limits.body_wait_s
        self.in_use = 0
        self.waiting = 0  # requests waiting for bytes
        self._freed = asyncio.Condition()

    def hold(self, size: int) -> _Hold:
        """Hold ``size`` bytes (a body bigger than the whole budget takes all of it) for
        the ``async with`` block; ``BudgetExhausted`` when they are not free within the
        wait."""
        return _Hold(self, min(max(size, 1), self.capacity))

    async def _take(self, size: int) -> None:
        if self.in_use + size <= self.capacity:  # the usual case: no wait, no lock needed
            self.in_use += size  # (the loop runs one task at a time)
            return
        async with self._freed:
            self.waiting += 1
            try:
                async with asyncio.timeout(self.wait_s):
                    await self._freed.wait_for(lambda: self.in_use + size <= self.capacity)
            except TimeoutError:
                raise BudgetExhausted from None
            finally:
                self.waiting -= 1
            self.in_use += size

    async def _give_back(self, size: int) -> None:
        self.in_use -= size
        if self.waiting:  # somebody waits for bytes: wake them
            async with self._freed:
                self._freed.notify_all()

    def busy(self) -> web.Response:
        """429 problem+json with ``Retry-After``, naming the limit."""
        seconds = max(1, math.ceil(self.wait_s))
        response = problem.problem(
            429, "busy", "服务繁忙，请稍后重试 (busy with other uploads, try again later)",
            f"请求体字节预算已用尽 (limits.body_budget_mb = {self.capacity / 1048576:g} MiB) / "
            f"the request-body budget is in use (limits.body_budget_mb); retry in {seconds} s",
            retry_after_s=seconds,
        )
        response.headers["Retry-After"] = str(seconds)
        return response


class _Hold:
    """``BodyBudget.hold``'s block: a class rather than a generator-based context manager,
    which cost a few microseconds more per request."""

    def __init__(self, budget: BodyBudget, size: int) -> None:
        self.budget = budget
        self.size = size

    async def __aenter__(self) -> None:
        await self.budget._take(self.size)

    async def __aexit__(self, *exc: object) -> None:
        await self.budget._give_back(self.size)
