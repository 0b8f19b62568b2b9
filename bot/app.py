"""`newsbot run` (run_bot), and NewsBot: the runtime of bot.runtime built in two steps.

bot.runtime.build is the composition root. NewsBot is for callers that make the bot first and
open it later (`NewsBot(settings)`, then `await bot.open()` or `async with`): the tests, the
benchmarks and the demo. It adds no behaviour of its own; once open, each of its parts is the
runtime's."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from bot.chat.platforms import ChatPlatform, build_platforms
from bot.collector import tune_garbage_collector
from bot.core.commands import Commands
from bot.core.delivery import DeliveryWorker
from bot.core.models import FeedState
from bot.core.pipeline import Pipeline, PollReport, PollStatus
from bot.core.ports import ParsedFeed
from bot.core.routing import QueryBook
from bot.core.store import Storage
from bot.feeds import FeedReader
from bot.feeds.fetch import HttpFetcher
from bot.ops import Metrics, OpsNotices, OpsServer
from bot.runtime import (
    InstanceLock,
    Runtime,
    StartupError,
    build,
    close_platforms,
    make_reader,
    utcnow,
)
from bot.scheduler import FeedScheduler
from config.settings import Settings

__all__ = [
    "InstanceLock",
    "NewsBot",
    "Runtime",
    "StartupError",
    "build",
    "build_platforms",
    "run_bot",
    "utcnow",
]

log = logging.getLogger(__name__)


class NotOpen(RuntimeError):
    """A part of the bot asked for before `open()` (or after `close()`)."""


class NewsBot:
    """`NewsBot(settings, stdout=..., clock=..., platforms=[...])`, then `await bot.open()`
    (or `async with`). `platforms`: the chat platforms to serve; none by default, so cards go to
    the console (`run_bot` passes those the settings configure).

    The fetcher and the reader exist from the start, so a caller may swap the reader (other
    parse limits) before opening, or after: polls and feed probes then use the new one. Every
    other part exists once the bot is open, and is the runtime's."""

    def __init__(
        self,
        settings: Settings,
        *,
        stdout: TextIO | None = None,
        clock: Callable[[], datetime] = utcnow,
        platforms: list[ChatPlatform] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.stdout = stdout
        self.platforms: list[ChatPlatform] = list(platforms or [])
        self._reader = make_reader(settings)
        self.fetcher: HttpFetcher = self._reader.fetcher
        self._runtime: Runtime | None = None
        self._handed_over = False  # the platforms and the reader: a runtime's, or closed

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise NotOpen("the bot is not open: await bot.open() first")
        return self._runtime

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Storage, config sync and the wiring; no network, no scheduler yet. Raises
        StartupError (see bot.runtime.build), with the database and the lock released."""
        tune_garbage_collector()
        self._runtime = await build(
            self.settings,
            stdout=self.stdout,
            clock=self.clock,
            platforms=self.platforms,
            reader=self._reader,
        )
        self._handed_over = True
        self._reader.warm()  # the parse workers start while the first fetches are under way

    async def close(self) -> None:
        if self._runtime is not None:
            runtime, self._runtime = self._runtime, None
            await runtime.close()
        elif not self._handed_over:
            # Never opened (or the opening failed): the platforms and the reader are still ours.
            self._handed_over = True
            await close_platforms(self.platforms)
            await self._reader.close()

    async def __aenter__(self) -> NewsBot:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the runtime's parts -----------------------------------------------------------------

    @property
    def reader(self) -> FeedReader:
        return self._reader

    @reader.setter
    def reader(self, reader: FeedReader) -> None:
        self._reader = reader
        if self._runtime is not None:
            self._runtime.use_reader(reader)

    @property
    def storage(self) -> Storage:
        return self.runtime.storage

    @property
    def worker(self) -> DeliveryWorker:
        return self.runtime.worker

    @property
    def pipeline(self) -> Pipeline:
        return self.runtime.pipeline

    @property
    def commands(self) -> Commands:
        return self.runtime.commands

    @property
    def scheduler(self) -> FeedScheduler:
        return self.runtime.scheduler

    @property
    def notices(self) -> OpsNotices:
        return self.runtime.notices

    @property
    def metrics(self) -> Metrics:
        return self.runtime.metrics

    @property
    def ops(self) -> OpsServer:
        """/healthz and /metrics."""
        return self.runtime.http

    @property
    def started_at(self) -> datetime:
        return self.runtime.started_at

    @property
    def last_poll_at(self) -> datetime | None:
        return self.runtime.polling.last_poll_at

    # --- running -----------------------------------------------------------------------------

    async def run_once(self) -> list[PollReport]:
        """Poll every feed once (concurrently), deliver what matched, return the reports."""
        return await self.runtime.run_once()

    async def run_forever(self, stop: asyncio.Event) -> None:
        await self.runtime.run_forever(stop)

    async def _scheduled_poll(self, feed_id: int) -> None:
        """What the scheduler runs when a feed's interval is up (benchmarks call it directly)."""
        await self.runtime.polling.scheduled(feed_id)

    async def _poll(self, feed: FeedState, *, force: bool = False) -> PollReport:
        return await self.runtime.polling.poll(feed, force=force)

    async def resync_feeds(self) -> None:
        await self.runtime.polling.resync()

    async def feeds_changed(self) -> None:
        await self.runtime.polling.feeds_changed()

    async def probe_feed(self, url: str, name: str) -> ParsedFeed:
        return await self.runtime.polling.probe(url, name)

    async def query_book(self) -> QueryBook:
        return await self.runtime.queries.current()

    async def prune(self) -> None:
        await self.runtime.prune()

    async def notify_ops(self, text: str) -> None:
        await self.runtime.notices.notify(text)

    def health(self) -> dict[str, object]:
        return self.runtime.health()

    def connections(self) -> dict[str, bool | None]:
        return self.runtime.services.connections()


async def run_bot(settings: Settings, *, once: bool = False, stdout: TextIO | None = None) -> int:
    """`newsbot run`: until SIGINT/SIGTERM, or one pass with `once`."""
    async with await build(settings, stdout=stdout) as runtime:
        if once:
            reports = await runtime.run_once()
            failed = [r for r in reports if r.status == PollStatus.ERROR]
            log.info("polled %d feeds (%d failed)", len(reports), len(failed))
            # One broken feed among many is reported, not fatal; none readable at all is a
            # failed run that a cron job or a script must be able to see.
            return 1 if reports and len(failed) == len(reports) else 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await runtime.run_forever(stop)
        return 0
