"""What the feed and page adapters share: polite, bounded HTTP GETs whose failures map
to the source error classes, the "seen already?" lookup, and the relevance filter.

Errors (``gateway.model.errors``): DNS, connection, timeout, 5xx, 408 and 429 are
``SourceUnavailable`` (the poller backs off); 404, 401, 403, 410 and other 4xx on the
configured URL are ``SourceMisconfigured`` (the source is disabled and reported); on a
page found by following links (a detail page, page 2) they raise ``PageGone`` and the
adapter decides. Politeness: at most one request per ``min_host_interval_s`` to a host
(across every source of this process; a robots.txt ``Crawl-delay`` widens it) and
robots.txt is honoured unless ``respect_robots: false``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx
from pydantic import ConfigDict, Field

from gateway.intake.poller import Fetched, PolledAdapter
from gateway.intake.sources import AdapterEnv
from gateway.model.errors import SourceMisconfigured, SourceUnavailable
from gateway.model.schema import RawRecord
from gateway.support.config import SourceConfig
from gateway.support.connection_check import ConnectionCheck
from gateway.support.http_client import USER_AGENT, make_client
from gateway.support.logging import get_logger
from normalizers.opinion.opinion_post import OpinionSettings
from normalizers.opinion.relevance import Relevance, Verdict, check

if TYPE_CHECKING:
    from gateway.intake.pipeline import Intake

log = get_logger("adapters.web")

ROBOTS_TTL_S = 3600.0
MAX_CRAWL_DELAY_S = 60.0
_REDIRECTS = (301, 302, 303, 307, 308)
_RETRIABLE = (408, 425, 429)
_MISCONFIGURED = (401, 403, 404, 410)


class WebOptions(OpinionSettings):
    """Options every polled web source has (politeness and bounds, with safe defaults),
    beside the opinion normalizers' own (``site``, ``max_body_chars``)."""

    model_config = ConfigDict(extra="forbid")

    poll_interval_s: float = Field(default=600.0, gt=0)
    timeout_s: float = Field(default=20.0, gt=0, le=300)
    user_agent: str | None = Field(default=None, description="default: the gateway's")
    min_host_interval_s: float = Field(default=2.0, ge=0)
    respect_robots: bool = True
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    relevance: Relevance = Field(default_factory=Relevance)


WebOptionsT = TypeVar("WebOptionsT", bound=WebOptions)


class WebSource(PolledAdapter[WebOptionsT]):
    """A pulled source on the public web (a feed, a site's pages): polled every
    ``poll_interval_s`` through its own polite ``Fetcher``."""

    channel = "opinion"

    def __init__(self, config: SourceConfig, options: Any, env: AdapterEnv) -> None:
        super().__init__(config, options, env)
        self.poll_interval_s = self.options.poll_interval_s
        self.fetcher = Fetcher(self.options)

    async def stop(self) -> None:
        await self.fetcher.close()

    def first_url(self) -> str:
        """The URL a poll starts from (the feed, a site's first list page)."""
        raise NotImplementedError

    async def check_connection(self) -> ConnectionCheck:
        """Fetch the first URL as a poll would (robots.txt, redirects, size bound), for
        ``minsheng check-config --connect``."""
        url = self.first_url()
        page = await self.fetcher.get(url)
        return ConnectionCheck.ok(f"可访问，HTTP {page.status}",
                                  f"fetched {url}: HTTP {page.status}, "
                                  f"{len(page.content)} bytes")


class PageGone(Exception):
    """A linked page (not the configured URL) answered 4xx or is barred by robots.txt."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason} on {url}")
        self.url, self.reason = url, reason


@dataclass(frozen=True)
class Page:
    url: str
    status: int
    headers: httpx.Headers
    content: bytes
    truncated: bool = False

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", ""))


# Host → the monotonic time its next request may start, for every source of this process.
_next_slot: dict[str, float] = {}


async def pace(host: str, interval_s: float) -> None:
    """Wait for ``host``'s turn: requests to one host start ``interval_s`` apart."""
    now = time.monotonic()
    slot = max(now, _next_slot.get(host, 0.0))
    _next_slot[host] = slot + interval_s
    if slot > now:
        await asyncio.sleep(slot - now)


def _status_error(url: str, status: int, configured: bool) -> Exception:
    if status >= 500 or status in _RETRIABLE:
        return SourceUnavailable(f"HTTP {status} on {url} (服务暂不可用)")
    if configured:
        hint = "检查 URL 或访问权限" if status in _MISCONFIGURED else "请求被拒绝"
        return SourceMisconfigured(f"HTTP {status} on the configured URL {url} ({hint})")
    return PageGone(url, f"HTTP {status}")


class Fetcher:
    """GETs for one source, through the shared httpx client factory."""

    def __init__(self, options: WebOptions) -> None:
        self.options = options
        self.user_agent = options.user_agent or USER_AGENT
        self._client: httpx.AsyncClient | None = None
        self._robots: dict[str, tuple[float, RobotFileParser | None]] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = make_client(
                timeout_s=self.options.timeout_s, max_connections=4, user_agent=self.user_agent
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get(self, url: str, *, headers: dict[str, str] | None = None,
                  configured: bool = True, truncate: bool = False) -> Page:
        """GET ``url`` following redirects; a 304 is returned, other errors raised."""
        for _ in range(self.options.max_redirects + 1):
            await self._polite(url, configured)
            page = await self._one(url, headers or {}, truncate)
            location = page.headers.get("location")
            if page.status not in _REDIRECTS or not location:
                break
            if page.status in (301, 308) and configured:
                log.warning("moved_permanently", url=url, to=location)
            url = urljoin(url, location)
        else:
            raise SourceUnavailable(f"more than {self.options.max_redirects} redirects from {url}")
        if page.status >= 400:
            raise _status_error(url, page.status, configured)
        return page

    async def _one(self, url: str, headers: dict[str, str], truncate: bool) -> Page:
        try:
            async with asyncio.timeout(self.options.timeout_s):
                return await self._read(url, headers, truncate)
        except (TimeoutError, httpx.TimeoutException):
            raise SourceUnavailable(
                f"no answer from {url} within {self.options.timeout_s:g} s (超时)"
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise SourceMisconfigured(f"cannot fetch {url}: {exc} (URL 无效)") from None
        except httpx.HTTPError as exc:  # DNS, refused, reset, broken protocol
            raise SourceUnavailable(
                f"cannot reach {url}: {type(exc).__name__}: {exc} (无法连接)"
            ) from None

    async def _read(self, url: str, headers: dict[str, str], truncate: bool) -> Page:
        limit = self.options.max_bytes
        async with self.client.stream("GET", url, headers=headers) as response:
            chunks: list[bytes] = []
            size, truncated = 0, False
            if response.status_code < 300:
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        truncated = True
                        break
            if truncated and not truncate:
                raise SourceUnavailable(
                    f"{url} is larger than max_bytes={limit} (内容超过大小上限)"
                )
            content = b"".join(chunks)[:limit]
            return Page(str(response.url), response.status_code, response.headers, content,
                        truncated)

    async def _polite(self, url: str, configured: bool) -> None:
        parts = urlsplit(url)
        host = parts.netloc.lower()
        robots = await self._robots_for(parts.scheme, host) if self.options.respect_robots \
            else None
        interval = self.options.min_host_interval_s
        if robots is not None:
            if not robots.can_fetch(self.user_agent, url):
                if not configured:
                    raise PageGone(url, "robots.txt disallows it")
                raise SourceMisconfigured(
                    f"robots.txt of {host} disallows {url} (robots.txt 禁止抓取; "
                    "set respect_robots: false only with the site's permission)"
                )
            delay = robots.crawl_delay(self.user_agent)
            if delay is not None:
                interval = max(interval, min(float(delay), MAX_CRAWL_DELAY_S))
        await pace(host, interval)

    async def _robots_for(self, scheme: str, host: str) -> RobotFileParser | None:
        key = f"{scheme}://{host}"
        cached = self._robots.get(key)
        if cached is not None and time.monotonic() - cached[0] < ROBOTS_TTL_S:
            return cached[1]
        await pace(host, self.options.min_host_interval_s)
        robots_url = f"{key}/robots.txt"
        try:
            async with asyncio.timeout(self.options.timeout_s):
                response = await self.client.get(robots_url, follow_redirects=True)
        except (TimeoutError, httpx.HTTPError) as exc:
            raise SourceUnavailable(f"cannot read {robots_url}: {exc!r} (无法读取 robots.txt)") \
                from None
        parser: RobotFileParser | None = None
        if response.status_code >= 500:
            raise SourceUnavailable(f"HTTP {response.status_code} on {robots_url}")
        if response.status_code < 300:
            parser = RobotFileParser(robots_url)
            parser.parse(response.content[:512 * 1024].decode("utf-8", "replace").splitlines())
        self._robots[key] = (time.monotonic(), parser)  # 4xx: no rules, all allowed
        return parser


# -- the store: what was seen, what was filtered -----------------------------------------


async def journaled_refs(intake: Intake, source: str, refs: list[str]) -> set[str]:
    """Which of ``refs`` this source has journaled already (whatever became of them)."""
    return await intake.services.journaled_refs(source, refs)


async def judge(intake: Intake, raw: RawRecord, rules: Relevance) -> Fetched | Verdict:
    """Run the source's normalizer to read title and text, and apply the relevance
    rules: the item to yield (with its draft, so the intake does not normalize it again),
    or the verdict that filtered it. An item the normalizer cannot read passes: the
    pipeline quarantines it."""
    if not rules.active:
        return Fetched(raw)
    try:
        draft = await intake.normalize(raw)
    except Exception:
        return Fetched(raw)
    verdict = check(rules, draft.subject, draft.body)
    return Fetched(raw, draft=draft) if verdict.relevant else verdict


async def journal_filtered(intake: Intake, raw: RawRecord, verdict: Verdict) -> int:
    """Keep an irrelevant item in the journal as ``filtered`` (no case), and count it."""
    return await intake.record_filtered(raw, {"reason": verdict.reason})
