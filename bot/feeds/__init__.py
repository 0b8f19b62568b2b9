"""Fetching (aiohttp) and parsing (feedparser) feeds: the bot's FeedReader."""

from __future__ import annotations

import dataclasses
import logging
import os

from bot.core.models import FeedState
from bot.core.ports import FeedError, FetchResult, ParsedFeed
from bot.feeds.fetch import HttpFetcher
from bot.feeds.hints import document_hints
from bot.feeds.parse import ParseLimits
from bot.feeds.pool import Parsed, ParseJob, ParsePool, ParseTimeout, WorkerDied

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
    default the shared pool), each document within `limits.time_limit`.

    `incremental`: hold a memo of each feed's last document, so that a changed body costs only
    its new and changed items (bot.feeds.items); `items_parsed` and `items_reused` count them."""

    def __init__(
        self,
        fetcher: HttpFetcher,
        *,
        limits: ParseLimits | None = None,
        pool: ParsePool | None = None,
        incremental: bool = True,
    ) -> None:
        self.fetcher = fetcher
        self.limits = limits or ParseLimits()
        self.pool = pool
        self.incremental = incremental
        # Per feed, the compressed memo of its last document (bot.feeds.incremental).
        self.memos: dict[str, bytes] = {}
        self.items_parsed = 0  # items parsed, whole documents' included
        self.items_reused = 0  # items of changed bodies taken from the feed's last document

    async def fetch(self, feed: FeedState) -> FetchResult:
        return await self.fetcher.fetch(feed)

    async def parse(self, result: FetchResult, feed_name: str) -> ParsedFeed:
        parsed = await self._parse(result, feed_name)
        # The channel's polling hints: a few regular expressions over its head, on the loop.
        return dataclasses.replace(parsed, hints=document_hints(result.body or b""))

    async def _parse(self, result: FetchResult, feed_name: str) -> ParsedFeed:
        if result.body is None:
            raise FeedError("nothing to parse")
        job = ParseJob(
            result.body,
            feed_name,
            result.url,
            dict(result.headers),
            itemize=self.incremental,
            memo=self.memos.get(feed_name) if self.incremental else None,
        )
        outcome = await self._run(job, feed_name)
        if isinstance(outcome, ParsedFeed):
            self.items_parsed += len(outcome.stories)
            return outcome
        if outcome.memo is None:
            self.memos.pop(feed_name, None)
        else:
            self.memos[feed_name] = outcome.memo
        self.items_parsed += outcome.items_parsed
        self.items_reused += outcome.items_reused
        return outcome.parsed

    async def _run(self, job: ParseJob, feed_name: str) -> Parsed:
        pool = self.pool or parse_pool()
        seconds = self.limits.time_limit.total_seconds()
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

    def warm(self) -> None:
        """Start the parse workers now, in the background (ParsePool.warm)."""
        (self.pool or parse_pool()).warm()

    async def close(self) -> None:
        await self.fetcher.close()
