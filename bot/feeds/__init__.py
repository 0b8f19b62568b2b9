"""Fetching (aiohttp) and parsing (feedparser) feeds: the bot's FeedReader."""

from __future__ import annotations

import logging
import os

from bot.core.models import FeedState
from bot.core.ports import FeedError, FetchResult, ParsedFeed
from bot.feeds.fetch import HttpFetcher
from bot.feeds.parse import ParseLimits
from bot.feeds.pool import ParseJob, ParsePool, ParseTimeout, WorkerDied

log = logging.getLogger(__name__)

_pool: ParsePool | None = None


def parse_pool() -> ParsePool:
    """The processes feedparser runs in, shared by every reader of this process."""
    global _pool
    if _pool is None:
        _pool = ParsePool(max(1, min(2, os.cpu_count() or 1)))
    return _pool


class FeedReader:
    """Fetch with aiohttp on the loop; parse with feedparser off it, in worker processes (by
    default the shared pool), each document within `limits.time_limit`."""

    def __init__(
        self,
        fetcher: HttpFetcher,
        *,
        limits: ParseLimits | None = None,
        pool: ParsePool | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.limits = limits or ParseLimits()
        self.pool = pool

    async def fetch(self, feed: FeedState) -> FetchResult:
        return await self.fetcher.fetch(feed)

    async def parse(self, result: FetchResult, feed_name: str) -> ParsedFeed:
        if result.body is None:
            raise FeedError("nothing to parse")
        pool = self.pool or parse_pool()
        seconds = self.limits.time_limit.total_seconds()
        job = ParseJob(result.body, feed_name, result.url, dict(result.headers))
        try:
            return await pool.parse(job, seconds)
        except ParseTimeout:
            # The worker was killed and is replaced for the next document; the feed is marked
            # failing with this reason, and retried later like any failing feed.
            log.warning(
                "parsing %r took longer than %g s; its parser was stopped", feed_name, seconds
            )
            raise FeedError(
                f"the document took too long to parse (stopped after {seconds:g} s)"
            ) from None
        except WorkerDied as exc:
            # Killed, out of memory, a parser crash on this very document: the other feeds get
            # a fresh worker; this one is reported.
            log.warning("the parser process died while reading %r", feed_name)
            raise FeedError(str(exc)) from None

    async def close(self) -> None:
        await self.fetcher.close()
