"""The composition root: `build(settings)` wires config -> storage -> fetcher -> pipeline ->
delivery -> chat into a Runtime, explicitly; nothing registers itself.

A Runtime is whole from the moment it exists: storage, reader, pipeline, delivery worker,
platforms, commands, scheduler, HTTP endpoints and ops notices are all there, so none of them is
Optional and nothing asserts that it was wired. `build` is the one way to get one: it takes the
instance lock, opens the store and syncs the config file into it, and if any of that fails it
gives back what it took before raising. Close the runtime (or use it as `async with`) to stop."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TextIO

from bot.chat.console import ConsoleSender
from bot.chat.platforms import (
    ChatPlatform,
    build_platforms,
    known_destinations,
    ops_channels,
    warn_unroutable,
)
from bot.cluster import ClusterWorker
from bot.core import ports
from bot.core.cluster import Coordinator
from bot.core.commands import Commands, CommandSettings
from bot.core.delivery import DeliverySettings, DeliveryWorker
from bot.core.destinations import Destinations
from bot.core.explain import WhySettings
from bot.core.models import Delivery, FeedSpec, Origin, StoredStory, WatchlistSpec
from bot.core.pings import PingBook
from bot.core.pipeline import IngestSettings, Pipeline, PollReport
from bot.core.polling import PollingPolicy
from bot.core.ports import ParsedFeed, Sender
from bot.core.routing import QueryBook
from bot.core.store import Storage
from bot.feeds import FeedReader
from bot.feeds.fetch import FetchLimits, HttpFetcher
from bot.feeds.guard import AddressGuard
from bot.feeds.websub import WebSub
from bot.ops import Metrics, OpsNotices, OpsServer, health_report
from bot.scheduler import Polling
from config.settings import Settings
from storage import describe_failure, ensure_private_folder, keeps_files, open_storage

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
        ensure_private_folder(self.path.parent)
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


class NoLock:
    """A store in memory belongs to this process alone: there is nothing to lock."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


def instance_lock(settings: Settings) -> InstanceLock | NoLock:
    return InstanceLock(settings.storage.path) if keeps_files(settings) else NoLock()


def make_reader(settings: Settings) -> FeedReader:
    """The feed reader the settings describe: fetch limits and the address guard."""
    fetch = settings.fetch
    limits = FetchLimits(
        timeout=fetch.timeout,
        max_bytes=fetch.max_bytes,
        max_redirects=fetch.max_redirects,
        concurrency=fetch.concurrency,
        per_host=fetch.per_host,
        **({"user_agent": fetch.user_agent} if fetch.user_agent else {}),
    )
    return FeedReader(HttpFetcher(limits, guard=AddressGuard(fetch.allow_networks)))


class QueryBooks:
    """The matcher's book of every watchlist and subscription, compiled again only when the
    store's queries have changed; the queries a new book leaves out go to the ops notices."""

    def __init__(self, storage: Storage, notices: OpsNotices) -> None:
        self.storage = storage
        self.notices = notices
        self._book = QueryBook([], [])
        self._version = -1  # the store counts from 0: the first call compiles
        self._lock = asyncio.Lock()

    async def current(self) -> QueryBook:
        async with self._lock:  # a thousand first polls must not build it a thousand times
            version = self.storage.queries_version
            if version != self._version:
                watchlists = await self.storage.list_watchlists()
                subscriptions = await self.storage.list_subscriptions()
                # Off the loop: 10,000 queries take a fifth of a second to compile.
                self._book = await asyncio.to_thread(QueryBook, watchlists, subscriptions)
                self._version = version
                await self.notices.queries_skipped(self._book.skipped)
            return self._book


def connections(platforms: Sequence[ChatPlatform]) -> dict[str, bool | None]:
    """Up, down, or None on standby (another worker of the database holds it)."""
    return {p.name: None if p.link.standing_by else p.connected for p in platforms}


class CommandServices:
    """What the chat commands ask of the running bot (bot.core.commands.Services), and no more:
    when it started and last polled, where its config came from, what a watchlist may post to,
    the current query book, a probe of a feed's address, a word when feeds were added or
    removed, and which chat connections are up."""

    def __init__(
        self,
        *,
        started_at: datetime,
        config_source: str,
        destinations: Destinations,
        queries: QueryBooks,
        polling: Polling,
        platforms: Sequence[ChatPlatform],
    ) -> None:
        self.started_at = started_at
        self.config_source = config_source
        self.destinations = destinations
        self._queries = queries
        self._polling = polling
        self._platforms = tuple(platforms)

    @property
    def last_poll_at(self) -> datetime | None:
        return self._polling.last_poll_at

    async def query_book(self) -> QueryBook:
        return await self._queries.current()

    async def probe_feed(self, url: str, name: str) -> ParsedFeed:
        return await self._polling.probe(url, name)

    async def feeds_changed(self) -> None:
        await self._polling.feeds_changed()

    def connections(self) -> dict[str, bool | None]:
        return connections(self._platforms)


class Runtime:
    """The running bot, every part wired. Made by `build`, which opens the store first."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        *,
        lock: InstanceLock | NoLock,
        reader: FeedReader,
        platforms: Sequence[ChatPlatform],
        senders: dict[str, Sender],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.started_at = clock()
        self.storage = storage
        self.lock = lock
        self.platforms = list(platforms)
        # Every listed platform's channels are valid, connected or not (a card for one without a
        # token fails with that reason); a platform handed in adds its own.
        self.destinations = known_destinations(*(p.destination_form for p in self.platforms))
        self.metrics = Metrics()
        self.metrics.watch_chat(
            lambda: [
                (p.name, p.connected, p.link.reconnects, p.link.disconnected_seconds())
                for p in self.platforms
            ]
        )
        self.notices = OpsNotices(
            ops_channels(settings), senders, failing_after=settings.fetch.failing_after
        )
        self.queries = QueryBooks(storage, self.notices)
        alerts = settings.alerts
        self.worker = DeliveryWorker(
            storage,
            senders,
            clock=clock,
            destinations=self.destinations,
            settings=DeliverySettings(
                burst_limit=alerts.burst_limit, max_updates=alerts.max_updates
            ),
            on_permanent_failure=self.notices.delivery_failed,
            on_thread_dropped=self.notices.thread_reply_dropped,
            on_sent=self._delivered,
            pings=self._pings,
        )
        self.pipeline = Pipeline(
            storage,
            reader,
            self.queries.current,
            settings=IngestSettings(
                max_age=alerts.max_age,
                dedupe_window=alerts.dedupe_window,
                max_updates=alerts.max_updates,
            ),
            clock=clock,
            on_alerts=self.worker.wake,
            on_feed_health=self.notices.feed_health,
            concurrency=settings.fetch.concurrency,
            polling=polling_policy(settings),
        )
        self.polling = Polling(
            storage,
            self.pipeline,
            settings=settings,
            metrics=self.metrics,
            notices=self.notices,
            clock=clock,
        )
        self.scheduler = self.polling.scheduler
        # Several workers on one database (issue 16): feeds are leased, not scheduled here.
        coordinator = storage if isinstance(storage, Coordinator) else None
        self.cluster: ClusterWorker | None = None
        if coordinator is not None:
            self.cluster = ClusterWorker(
                coordinator,
                storage,
                self.polling,
                self.worker,
                self.platforms,
                metrics=self.metrics,
            )
        self.services = CommandServices(
            started_at=self.started_at,
            config_source=settings.source,
            destinations=self.destinations,
            queries=self.queries,
            polling=self.polling,
            platforms=self.platforms,
        )
        self.commands = Commands(
            storage,
            self.services,
            clock=clock,
            settings=CommandSettings(
                min_interval=settings.fetch.min_interval,
                default_interval=settings.fetch.default_interval,
                why=WhySettings(max_age=alerts.max_age, max_updates=alerts.max_updates),
            ),
            cluster=coordinator,
        )
        self.http = OpsServer(self.metrics, self.health, self._refresh_metrics)
        # WebSub push (issue 17), only where hubs can reach us: without [http] public_url
        # nothing is discovered, subscribed or served, and polling alone brings the stories.
        self.websub: WebSub | None = None
        if settings.http.public_url:
            self.websub = WebSub(
                storage,
                self.pipeline,
                reader.fetcher,
                public_url=settings.http.public_url,
                max_bytes=settings.fetch.max_bytes,
                clock=clock,
                coordinator=coordinator,
                on_ingested=self.metrics.pushed,
            )
            self.pipeline.on_read = self.websub.advertised
            self.pipeline.is_pushed = self.websub.pushing
            self.http.mount(self.websub.mount)
        for platform in self.platforms:
            platform.attach(self.commands)
            # Back after an outage: its cards go out now, not when their retry timers say.
            platform.link.when_up(functools.partial(self.worker.release, platform.name))
        self._started: set[str] = set()
        self._closed = False

    async def _pings(self) -> PingBook:
        """Who the watchlists ping, from the same book the matcher uses (rebuilt when a
        watchlist changes, here or, on PostgreSQL, in another worker)."""
        return (await self.queries.current()).pings

    @property
    def reader(self) -> ports.FeedReader:
        """The reader every poll and feed probe uses (the pipeline's)."""
        return self.pipeline.reader

    def use_reader(self, reader: FeedReader) -> None:
        """Read feeds with another reader from now on (other parse limits, say); the old one's
        fetcher is not closed, as the new reader may share it."""
        self.pipeline.reader = reader

    # --- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the scheduler and the worker, disconnect, close the store, release the lock.
        Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.scheduler.shutdown()
        if self.websub is not None:
            await self.websub.close()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.worker.stop()
        await close_platforms(self.platforms)
        if self.cluster is not None:
            await self.cluster.let_go()
        await self.reader.close()
        await self.storage.close()
        self.lock.release()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- running -----------------------------------------------------------------------------

    async def run_once(self) -> list[PollReport]:
        """Poll every feed once (concurrently), deliver what matched, return the reports."""
        await self.start_platforms()
        reports = await self.polling.every_feed()
        await self.worker.drain()
        return reports

    async def run_forever(self, stop: asyncio.Event) -> None:
        if self.cluster is not None:
            await self.cluster.start()
        await self.start_platforms()
        await self.polling.resync()
        self.scheduler.every("prune", timedelta(hours=1), self.prune, first_in=timedelta(minutes=1))
        self.scheduler.start()
        if self.settings.http.enabled:
            serving = await self.http.start(self.settings.http.host, self.settings.http.port)
            if serving and self.websub is not None:
                self.websub.start()  # hubs can call back: subscribe and renew
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
            await self.http.close()
            if self.websub is not None:
                await self.websub.close()
            self.scheduler.shutdown()
            if self.cluster is not None:
                await self.cluster.stop()
            await self.worker.stop()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def start_platforms(self) -> None:
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

    async def prune(self) -> None:
        stories, keys = await self.storage.prune(
            self.clock(),
            stories=self.settings.storage.retention,
            keys=self.settings.storage.key_retention,
            window=self.settings.alerts.dedupe_window,
        )
        if stories or keys:
            log.info("pruned %d old stories and %d identity keys", stories, keys)

    def health(self) -> dict[str, object]:
        """/healthz: ok while the scheduler runs and every chat connection is up."""
        return health_report(
            self.scheduler.running,
            {platform.name: (platform.connected, platform.link) for platform in self.platforms},
            self.polling.last_poll_at,
        )

    async def _refresh_metrics(self) -> None:
        counts = await self.storage.delivery_counts()
        self.metrics.pending.set(counts.get("pending", 0))
        self.metrics.keep_feeds(feed.name for feed in await self.storage.list_feeds())
        if self.cluster is not None:
            await self.cluster.refresh()

    def _delivered(self, delivery: Delivery, story: StoredStory, at: datetime) -> None:
        self.metrics.delivered(delivery, story, at)
        self.notices.delivered(delivery)


async def close_platforms(platforms: Sequence[ChatPlatform]) -> None:
    for platform in platforms:
        try:
            await platform.close()
        except Exception:
            log.exception("closing %s failed", platform.name)


async def build(
    settings: Settings,
    *,
    stdout: TextIO | None = None,
    clock: Callable[[], datetime] = utcnow,
    platforms: Sequence[ChatPlatform] | None = None,
    reader: FeedReader | None = None,
) -> Runtime:
    """The bot, wired and ready to run: the store open with the config file's feeds and
    watchlists synced into it; no network yet, no scheduler (run_once / run_forever start them).

    `platforms`: the chat platforms to serve (default: those whose tokens the settings hold);
    `reader`: the feed reader (default: one the settings describe); `stdout`: where console
    cards go. The runtime owns what it is given once it is returned, and closes it.

    Fails with StartupError (one line: why, and what to do) when the database cannot be used;
    whatever fails, the store and the instance lock are released before it raises."""
    lock = instance_lock(settings)
    lock.acquire()
    storage: Storage | None = None
    try:
        storage = await open_storage(settings)
        await sync_config(storage, settings, clock())
        chat = build_platforms(settings) if platforms is None else list(platforms)
        senders: dict[str, Sender] = {"console": ConsoleSender(settings.console.format, stdout)}
        senders.update((platform.name, platform.sender) for platform in chat)
        warn_unroutable(await storage.list_watchlists(), settings, chat, senders)
        return Runtime(
            settings,
            storage,
            lock=lock,
            reader=reader or make_reader(settings),
            platforms=chat,
            senders=senders,
            clock=clock,
        )
    except BaseException as exc:
        if storage is not None:
            with contextlib.suppress(Exception):
                await storage.close()
        lock.release()
        reason = describe_failure(settings, exc)
        if reason is not None:
            raise StartupError(reason) from exc
        raise


def polling_policy(settings: Settings) -> PollingPolicy:
    """[polling] as the core's value."""
    polling = settings.polling
    return PollingPolicy(
        min_interval=polling.min_interval,
        max_interval=polling.max_interval,
        adaptive=polling.adaptive,
        honour_http_hints=polling.honour_http_hints,
        honour_feed_hints=polling.honour_feed_hints,
    )


async def sync_config(storage: Storage, settings: Settings, now: datetime) -> None:
    """The config file's feeds and watchlists, as the file says them (see DESIGN: the file
    manages its own; chat's live in the database)."""
    await storage.sync_config_feeds(
        [
            FeedSpec(
                f.name,
                f.url,
                settings.feed_interval(f),
                Origin.CONFIG,
                fixed=f.interval is not None,
            )
            for f in settings.feeds
        ],
        now,
    )
    await storage.sync_config_watchlists(
        [
            WatchlistSpec(w.name, w.query, w.channels, w.ping, w.ping_when, w.updates)
            for w in settings.watchlists
        ],
        now,
    )
