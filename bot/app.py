"""The composition root: config -> storage -> fetcher -> pipeline -> delivery -> chat.

Everything is wired here, explicitly; nothing registers itself."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TextIO

from bot.chat.console import ConsoleSender
from bot.chat.platforms import ChatPlatform, build_platforms, known_destinations, ops_channels
from bot.core.commands import Commands, CommandSettings
from bot.core.delivery import DeliverySettings, DeliveryWorker
from bot.core.models import Delivery, FeedSpec, FeedState, Origin, StoredStory, platform_of
from bot.core.pipeline import IngestSettings, Pipeline, PollReport
from bot.core.ports import FeedError, FetchStatus, ParsedFeed, Sender
from bot.core.routing import QueryBook
from bot.feeds import FeedReader
from bot.feeds.fetch import FetchLimits, HttpFetcher
from bot.feeds.guard import AddressGuard
from bot.ops import Metrics, OpsServer
from bot.scheduler import FeedScheduler
from config.settings import Settings
from storage.sqlite import SqliteStorage

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class StartupError(Exception):
    """The bot cannot start; the message says why and what to do."""


class InstanceLock:
    """One writer per database: a second bot on the same file would post every alert twice."""

    def __init__(self, db_path: str) -> None:
        self.path = Path(f"{db_path}.lock")
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        SqliteStorage.ensure_private_folder(self.path.parent)
        # 0600 like the database beside it (the mode is set at creation, whatever the umask).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        handle = os.fdopen(fd, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StartupError(
                f"another newsbot (pid {holder}) is already running on this database; "
                "stop it first, or give this one its own [storage].path"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class NewsBot:
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
        self.started_at = clock()
        self.stdout = stdout
        self.platforms: list[ChatPlatform] = list(platforms or [])
        # Every listed platform's channels are valid, connected or not (a card for one without a
        # token fails with that reason); a platform handed in adds its own.
        self.destinations = known_destinations(*(p.destination_form for p in self.platforms))
        self.storage: SqliteStorage | None = None
        self.lock = (
            InstanceLock(settings.storage.path) if settings.storage.path != ":memory:" else None
        )
        self._book: QueryBook | None = None
        self._book_version = -1
        self.fetcher = HttpFetcher(
            FetchLimits(
                timeout=settings.fetch.timeout,
                max_bytes=settings.fetch.max_bytes,
                max_redirects=settings.fetch.max_redirects,
                concurrency=settings.fetch.concurrency,
                per_host=settings.fetch.per_host,
                **({"user_agent": settings.fetch.user_agent} if settings.fetch.user_agent else {}),
            ),
            guard=AddressGuard(settings.fetch.allow_networks),
        )
        self.reader = FeedReader(self.fetcher)
        # At most this many polls in flight: a fetched body waits for its turn to be ingested
        # (one at a time), and a poll queued behind the connection pool must not spend its
        # timeout waiting for a connection.
        self._poll_gate = asyncio.Semaphore(settings.fetch.concurrency)
        self._book_lock = asyncio.Lock()
        self.scheduler = FeedScheduler(self._scheduled_poll, clock=clock)
        self.last_poll_at: datetime | None = None
        self._notified_targets: set[str] = set()
        self._skipped_reported: set[tuple[tuple[str, int], str]] = set()
        self._started: set[str] = set()
        self.metrics = Metrics()
        self.metrics.watch_chat(
            lambda: [
                (p.name, p.connected, p.link.reconnects, p.link.disconnected_seconds())
                for p in self.platforms
            ]
        )
        self.ops = OpsServer(self.metrics, self.health, self._refresh_metrics)
        self.pipeline: Pipeline | None = None
        self.worker: DeliveryWorker | None = None
        self.commands: Commands | None = None
        self.config_source = settings.source

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Storage, config sync and the pipeline; no network, no scheduler yet.

        Fails with StartupError (one line: why, and what to do) when the database cannot be
        used; whatever fails, the database and the instance lock are released before it
        raises, so nothing is left holding them."""
        if self.lock is not None:
            self.lock.acquire()
        try:
            await self._open()
        except BaseException as exc:
            if self.storage is not None:
                with contextlib.suppress(Exception):
                    await self.storage.close()
                self.storage = None
            if self.lock is not None:
                self.lock.release()
            reason = SqliteStorage.describe_failure(self.settings.storage.path, exc)
            if reason is not None:
                raise StartupError(reason) from exc
            raise

    async def _open(self) -> None:
        self.storage = await SqliteStorage.open(self.settings.storage.path)
        now = self.clock()
        await self.storage.sync_config_feeds(
            [
                FeedSpec(f.name, f.url, self.settings.feed_interval(f), Origin.CONFIG)
                for f in self.settings.feeds
            ],
            now,
        )
        await self.storage.sync_config_watchlists(
            [(w.name, w.query, w.channels) for w in self.settings.watchlists], now
        )
        alerts = self.settings.alerts
        senders: dict[str, Sender] = {
            "console": ConsoleSender(self.settings.console.format, self.stdout)
        }
        for platform in self.platforms:
            senders[platform.name] = platform.sender
        self.worker = DeliveryWorker(
            self.storage,
            senders,
            clock=self.clock,
            destinations=self.destinations,
            settings=DeliverySettings(burst_limit=alerts.burst_limit),
            on_permanent_failure=self._delivery_failed,
            on_sent=self._delivered,
        )
        self.pipeline = Pipeline(
            self.storage,
            self.reader,
            self.query_book,
            settings=IngestSettings(
                max_age=alerts.max_age,
                dedupe_window=alerts.dedupe_window,
                max_updates=alerts.max_updates,
            ),
            clock=self.clock,
            on_alerts=self.worker.wake,
            on_feed_health=self._feed_health,
        )
        self.commands = Commands(
            self.storage,
            self,
            clock=self.clock,
            settings=CommandSettings(
                min_interval=self.settings.fetch.min_interval,
                default_interval=self.settings.fetch.default_interval,
            ),
        )
        for platform in self.platforms:
            platform.attach(self.commands)
            # Back after an outage: its cards go out now, not when their retry timers say.
            platform.link.when_up(functools.partial(self.worker.release, platform.name))
        await self._warn_unroutable()

    async def _warn_unroutable(self) -> None:
        assert self.storage is not None and self.worker is not None
        watchlists = await self.storage.list_watchlists()
        posted_to = {platform_of(c) for w in watchlists for c in w.channels}
        for platform in self.platforms:
            if platform.name not in posted_to:
                # A token and the default config (`docker run -e DISCORD_TOKEN=...`): connected,
                # but every card would go to the console, which nobody reads.
                log.warning(
                    "%s is configured, but no watchlist posts to a %s: channel, so no card goes "
                    'there; set a watchlist\'s channels (e.g. channels = ["%s"]) '
                    "in %s, or add one in chat with /watchlist add",
                    platform.name,
                    platform.name,
                    platform.destination_form.help,
                    self.config_source,
                )
        for watchlist in watchlists:
            for channel in watchlist.channels:
                if platform_of(channel) not in self.worker.senders:
                    log.warning(
                        "watchlist %r posts to %s, but no %s connection is configured: those "
                        "cards will be marked failed",
                        watchlist.name,
                        channel,
                        platform_of(channel),
                    )

    async def close(self) -> None:
        self.scheduler.shutdown()
        if self.worker is not None:
            await self.worker.stop()
        for platform in self.platforms:
            try:
                await platform.close()
            except Exception:
                log.exception("closing %s failed", platform.name)
        await self.fetcher.close()
        if self.storage is not None:
            await self.storage.close()
            self.storage = None
        if self.lock is not None:
            self.lock.release()

    async def __aenter__(self) -> NewsBot:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- running -----------------------------------------------------------------------------

    async def run_once(self) -> list[PollReport]:
        """Poll every feed once (concurrently), deliver what matched, return the reports."""
        assert self.storage is not None and self.pipeline is not None and self.worker is not None
        await self._start_platforms()
        feeds = await self.storage.list_feeds()
        reports = await asyncio.gather(*(self._poll(feed, force=True) for feed in feeds))
        await self.worker.drain()
        return list(reports)

    async def run_forever(self, stop: asyncio.Event) -> None:
        assert self.storage is not None and self.worker is not None
        await self._start_platforms()
        await self.resync_feeds()
        self.scheduler.every("prune", timedelta(hours=1), self.prune, first_in=timedelta(minutes=1))
        self.scheduler.start()
        if self.settings.http.enabled:
            await self.ops.start(self.settings.http.host, self.settings.http.port)
        worker = asyncio.create_task(self.worker.run_forever(), name="delivery-worker")
        log.info(
            "newsbot running: %d feeds, %d watchlists; Ctrl-C to stop",
            len(await self.storage.list_feeds()),
            len(await self.storage.list_watchlists()),
        )
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            await self.ops.close()
            self.scheduler.shutdown()
            await self.worker.stop()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _start_platforms(self) -> None:
        for platform in self.platforms:
            if platform.name in self._started:
                continue
            self._started.add(platform.name)
            try:
                await platform.start()
            except Exception:
                # A chat platform that cannot start (bad token, unreachable) must not stop the
                # polling: its cards wait in the outbox and are retried.
                log.exception("starting %s failed; its cards stay pending", platform.name)

    async def resync_feeds(self) -> None:
        """Called at start and after a feed is added or removed in chat."""
        assert self.storage is not None
        self.scheduler.sync(await self.storage.list_feeds())

    async def feeds_changed(self) -> None:
        if self.scheduler.running:
            await self.resync_feeds()

    async def probe_feed(self, url: str, name: str) -> ParsedFeed:
        """One fetch and parse of a URL as a chat-added feed (address guard on), nothing stored."""
        probe = FeedState(
            id=0,
            name=name,
            url=url,
            interval=self.settings.fetch.default_interval,
            origin=Origin.CHAT,
        )
        result = await self.reader.fetch(probe)
        if result.status != FetchStatus.OK:
            raise FeedError(result.error or "no content")
        return await self.reader.parse(result, name)

    def health(self) -> dict[str, object]:
        connections = self.connections()
        problems = []
        if not self.scheduler.running:
            problems.append("the scheduler is not running")
        links = {platform.name: platform.link for platform in self.platforms}
        problems += [
            f"{name} is disconnected ({links[name].reason or 'no connection'})"
            for name, up in connections.items()
            if not up
        ]
        return {
            "ok": not problems,
            "reason": "; ".join(problems) or None,
            "scheduler": self.scheduler.running,
            "connections": connections,
            "chat": {
                name: {
                    "connected": connections[name],
                    "reason": None if connections[name] else link.reason,
                    "reconnects": link.reconnects,
                    "disconnected_seconds": round(link.disconnected_seconds(), 3),
                }
                for name, link in links.items()
            },
            "last_poll_at": self.last_poll_at.isoformat() if self.last_poll_at else None,
        }

    async def _refresh_metrics(self) -> None:
        if self.storage is not None:
            counts = await self.storage.delivery_counts()
            self.metrics.pending.set(counts.get("pending", 0))

    def connections(self) -> dict[str, bool]:
        return {platform.name: platform.connected for platform in self.platforms}

    async def _scheduled_poll(self, feed_id: int) -> None:
        assert self.storage is not None
        try:
            feed = await self.storage.get_feed_by_id(feed_id)
            if feed is None:
                await self.resync_feeds()
                return
            await self._poll(feed)
        except asyncio.CancelledError:
            # Shutdown cancels polls in flight; a poll commits in one transaction, so nothing
            # is half-written. Not an error worth APScheduler's traceback.
            log.debug("poll of feed %d cancelled by shutdown", feed_id)

    async def _poll(self, feed: FeedState, *, force: bool = False) -> PollReport:
        assert self.pipeline is not None
        try:
            async with self._poll_gate:
                report = await self.pipeline.poll(feed, force=force)
        except Exception as exc:
            # A bug or a database failure in one feed's poll must not stop the others.
            log.exception("poll of feed %r crashed", feed.name)
            report = PollReport(feed.name, "error", error=f"internal error: {exc}")
            # Storage records the failed poll on the feed (a full disk shows in /status); the ops
            # channel hears of it like any other failing feed.
            try:
                await self._feed_health(feed, report, feed.failures + 1)
            except Exception:
                log.exception("reporting the failed poll of feed %r failed", feed.name)
        self.last_poll_at = self.clock()
        self.metrics.poll(report)
        if report.warning:
            log.info("feed %r: %s", feed.name, report.warning)
        if not feed.baseline_done and report.status == "new":
            # Said plainly: "70 new, 0 alerts" on a feed that names a watched word looks broken.
            log.info(
                "feed %r: first poll, %d stories recorded as a baseline without alerting; "
                "alerts start with the next new story",
                feed.name,
                report.stories,
            )
        elif report.new or report.alerts:
            log.info(
                "feed %r: %d stories, %d new, %d updated, %d alerts",
                feed.name,
                report.stories,
                report.new,
                report.updated,
                report.alerts,
            )
        return report

    async def prune(self) -> None:
        assert self.storage is not None
        stories, keys = await self.storage.prune(
            self.clock(),
            stories=self.settings.storage.retention,
            keys=self.settings.storage.key_retention,
            window=self.settings.alerts.dedupe_window,
        )
        if stories or keys:
            log.info("pruned %d old stories and %d identity keys", stories, keys)

    async def query_book(self) -> QueryBook:
        assert self.storage is not None
        async with self._book_lock:  # a thousand first polls must not build it a thousand times
            version = self.storage.queries_version
            if self._book is None or version != self._book_version:
                watchlists = await self.storage.list_watchlists()
                subscriptions = await self.storage.list_subscriptions()
                # Off the loop: 10,000 queries take a fifth of a second to compile.
                self._book = await asyncio.to_thread(QueryBook, watchlists, subscriptions)
                self._book_version = version
                await self._report_skipped(self._book)
            return self._book

    async def _report_skipped(self, book: QueryBook) -> None:
        """Tell the ops channel once about each query the matcher had to leave out."""
        for item in book.skipped:
            if (item.key, item.query) in self._skipped_reported:
                continue
            self._skipped_reported.add((item.key, item.query))
            await self.notify_ops(
                f"The {item.what} was skipped and alerts nobody: {item.reason}. "
                f"Query: {item.query[:200]}. Every other watchlist and subscription still alerts; "
                "edit or remove this one."
            )

    # --- operational notices -----------------------------------------------------------------

    def ops_channels(self) -> list[str]:
        return ops_channels(self.settings)

    async def notify_ops(self, text: str) -> None:
        assert self.worker is not None
        channels = self.ops_channels()
        if not channels:
            log.warning("ops notice: %s", text)
            return
        for channel in channels:
            sender = self.worker.senders.get(platform_of(channel))
            if sender is None:
                log.warning("ops notice (no %s connection): %s", platform_of(channel), text)
                continue
            result = await sender.notify(channel, text)
            if not result.ok:
                log.warning("could not post ops notice to %s: %s", channel, result.error)

    async def _feed_health(self, feed: FeedState, report: PollReport, failures: int) -> None:
        threshold = self.settings.fetch.failing_after
        if report.status == "error" and failures == threshold:
            await self.notify_ops(
                f"Feed {feed.name!r} is failing: {report.error} ({failures} polls in a row). "
                "It keeps being retried with backoff."
            )
        elif report.status == "recovered" and feed.failures >= threshold:
            await self.notify_ops(
                f"Feed {feed.name!r} recovered after {feed.failures} failed polls."
            )

    def _delivered(self, delivery: Delivery, story: StoredStory, at: datetime) -> None:
        self.metrics.delivered(delivery, story, at)
        # A destination that works again is reported again the next time it fails.
        self._notified_targets.discard(delivery.target)

    async def _delivery_failed(self, delivery: Delivery, error: str) -> None:
        if delivery.target in self._notified_targets:
            return
        self._notified_targets.add(delivery.target)
        await self.notify_ops(
            f"Cannot deliver to {delivery.target}: {error}. Cards for it are marked failed; "
            "fix the permission or the watchlist's channel."
        )


async def run_bot(settings: Settings, *, once: bool = False, stdout: TextIO | None = None) -> int:
    """`newsbot run`: until SIGINT/SIGTERM, or one pass with `once`."""
    bot = NewsBot(settings, stdout=stdout, platforms=build_platforms(settings))
    try:
        await bot.open()
        if once:
            reports = await bot.run_once()
            failed = [r for r in reports if r.status == "error"]
            log.info("polled %d feeds (%d failed)", len(reports), len(failed))
            # One broken feed among many is reported, not fatal; none readable at all is a
            # failed run that a cron job or a script must be able to see.
            return 1 if reports and len(failed) == len(reports) else 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await bot.run_forever(stop)
        return 0
    finally:
        await bot.close()
