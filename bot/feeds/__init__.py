"""Fetching (aiohttp) and parsing (feedparser) feeds: the bot's FeedReader."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from bot.core.models import FeedState
from bot.core.ports import FeedError, FetchResult, ParsedFeed
from bot.feeds.fetch import HttpFetcher
from bot.feeds.parse import parse_document


class FeedReader:
    """Fetch with aiohttp on the loop; parse with feedparser off it."""

    def __init__(self, fetcher: HttpFetcher, executor: Executor | None = None) -> None:
        self.fetcher = fetcher
        self.executor = executor

    async def fetch(self, feed: FeedState) -> FetchResult:
        return await self.fetcher.fetch(feed)

    async def parse(self, result: FetchResult, feed_name: str) -> ParsedFeed:
        if result.body is None:
            raise FeedError("nothing to parse")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, _parse, result.body, feed_name, result.url, dict(result.headers)
        )

    async def close(self) -> None:
        await self.fetcher.close()


def _parse(body: bytes, feed_name: str, url: str, headers: dict[str, str]) -> ParsedFeed:
    return parse_document(body, feed_name=feed_name, url=url, headers=headers)
