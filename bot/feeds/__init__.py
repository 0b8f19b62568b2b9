"""Fetching (aiohttp) and parsing (feedparser) feeds: the bot's FeedReader."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from bot.core.models import FeedState
from bot.core.ports import FeedError, FetchResult, ParsedFeed
from bot.feeds.fetch import HttpFetcher
from bot.feeds.parse import parse_document

log = logging.getLogger(__name__)

_pool: ProcessPoolExecutor | None = None


def parse_pool() -> ProcessPoolExecutor:
    """The processes feedparser runs in, shared by every reader of this process.

    feedparser holds the GIL for about half a millisecond per item: in threads, a cycle of
    changed feeds made the event loop late by 150-370 ms (bench/pipeline.py), enough to worry a
    Discord heartbeat. In processes it is not the loop's business. forkserver, not fork: the bot
    has threads (SQLite's, the resolver's) that a fork would copy mid-flight."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=max(1, min(2, os.cpu_count() or 1)),
            mp_context=multiprocessing.get_context("forkserver"),
        )
    return _pool


def _reset_pool() -> None:
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


class FeedReader:
    """Fetch with aiohttp on the loop; parse with feedparser off it (in `executor`, by default
    the shared process pool)."""

    def __init__(self, fetcher: HttpFetcher, executor: Executor | None = None) -> None:
        self.fetcher = fetcher
        self.executor = executor

    async def fetch(self, feed: FeedState) -> FetchResult:
        return await self.fetcher.fetch(feed)

    async def parse(self, result: FetchResult, feed_name: str) -> ParsedFeed:
        if result.body is None:
            raise FeedError("nothing to parse")
        loop = asyncio.get_running_loop()
        executor = self.executor or parse_pool()
        args = (result.body, feed_name, result.url, dict(result.headers))
        try:
            return await loop.run_in_executor(executor, _parse, *args)
        except BrokenProcessPool:
            # A worker died (killed, out of memory, a parser crash on this very document):
            # start a fresh pool for the other feeds and report this one.
            if executor is _pool:
                _reset_pool()
            log.warning("the parser process died while reading %r", feed_name)
            raise FeedError("the parser crashed on this document") from None

    async def close(self) -> None:
        await self.fetcher.close()


def _parse(body: bytes, feed_name: str, url: str, headers: dict[str, str]) -> ParsedFeed:
    return parse_document(body, feed_name=feed_name, url=url, headers=headers)
