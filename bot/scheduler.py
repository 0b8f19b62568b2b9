"""When and how feeds are polled: FeedScheduler, the only module that touches APScheduler, and
Polling, what each of its jobs does around the pipeline.

One job per feed, each on its own interval. Polls are spread evenly over the interval (feed i of n
starts at i/n of it) with a little jitter, so a thousand feeds never fire in the same second;
the first poll of each feed still happens within seconds of start-up. Jobs never overlap
(`max_instances=1`) and missed runs collapse into one (`coalesce=True`).

A feed's interval follows its publishing rate (bot.core.polling): after each poll, the feed's
job alone is re-timed when its interval moved; the others are not touched."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.cluster import LeaseLost
from bot.core.durations import format_duration
from bot.core.models import FeedState, Origin
from bot.core.pipeline import Pipeline, PollReport, PollStatus
from bot.core.ports import FeedError, FetchStatus, ParsedFeed
from bot.core.store import Storage
from bot.ops import Metrics, OpsNotices
from config.settings import Settings

log = logging.getLogger(__name__)

STARTUP_SPREAD = timedelta(seconds=20)


class FeedScheduler:
    def __init__(
        self,
        poll: Callable[[int], Awaitable[object]],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._poll = poll
        self._clock = clock
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._intervals: dict[int, timedelta] = {}

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            # wait=False: in-flight polls are cancelled with the loop's tasks; a poll commits
            # in one transaction, so a cancelled one leaves nothing half-written.
            self._scheduler.shutdown(wait=False)

    def sync(self, feeds: list[FeedState], *, first_run_soon: bool = True) -> None:
        """Make the jobs exactly the given feeds: add new ones, re-time changed ones, drop gone."""
        now = self._clock()
        wanted = {feed.id: feed for feed in feeds}
        for feed_id in list(self._intervals):
            if feed_id not in wanted:
                self._scheduler.remove_job(self._job_id(feed_id))
                del self._intervals[feed_id]
        by_interval: dict[timedelta, list[FeedState]] = {}
        for feed in feeds:
            # The interval its last poll left it (adaptive), kept across restarts by the store.
            by_interval.setdefault(feed.poll_interval, []).append(feed)
        for interval, group in by_interval.items():
            for index, feed in enumerate(sorted(group, key=lambda f: f.id)):
                if self._intervals.get(feed.id) == interval:
                    continue
                offset = interval * index / len(group)
                spread = min(STARTUP_SPREAD, interval)
                soon = spread * index / len(group) if first_run_soon else offset
                self._scheduler.add_job(
                    self._poll,
                    _trigger(interval, now + offset),
                    args=[feed.id],
                    id=self._job_id(feed.id),
                    name=f"poll {feed.name}",
                    replace_existing=True,
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=max(1, int(interval.total_seconds())),
                    next_run_time=now + soon,
                )
                self._intervals[feed.id] = interval

    def retime(self, feed_id: int, interval: timedelta) -> bool:
        """Poll this feed every `interval` from now on, the next poll one interval from now;
        nothing when that is its interval already (or it has no job). True when re-timed."""
        if self._intervals.get(feed_id, interval) == interval:
            return False
        job_id = self._job_id(feed_id)
        if self._scheduler.get_job(job_id) is None:
            return False
        self._scheduler.modify_job(job_id, misfire_grace_time=max(1, int(interval.total_seconds())))
        self._scheduler.reschedule_job(job_id, trigger=_trigger(interval, self._clock() + interval))
        self._intervals[feed_id] = interval
        return True

    def interval_of(self, feed_id: int) -> timedelta | None:
        """The interval the feed's job runs at (None: no job)."""
        return self._intervals.get(feed_id)

    def every(
        self,
        name: str,
        interval: timedelta,
        func: Callable[[], Awaitable[object]],
        *,
        first_in: timedelta | None = None,
    ) -> None:
        """A maintenance job (pruning, health checks)."""
        self._scheduler.add_job(
            func,
            IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC),
            id=f"task:{name}",
            name=name,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            next_run_time=self._clock() + (first_in or interval),
        )

    @staticmethod
    def _job_id(feed_id: int) -> str:
        return f"feed:{feed_id}"


def _trigger(interval: timedelta, start: datetime) -> IntervalTrigger:
    return IntervalTrigger(
        seconds=interval.total_seconds(),
        start_date=start,
        jitter=min(interval.total_seconds() * 0.05, 15),
        timezone=UTC,
    )


class Polling:
    """When and how feeds are polled: the scheduler's jobs follow the store's feeds (the
    pipeline bounds the polls in flight), and each outcome is logged and counted. A poll that
    crashes (a bug, a full disk) is a failed poll of that feed, reported like any other."""

    def __init__(
        self,
        storage: Storage,
        pipeline: Pipeline,
        *,
        settings: Settings,
        metrics: Metrics,
        notices: OpsNotices,
        clock: Callable[[], datetime],
    ) -> None:
        self.storage = storage
        self.pipeline = pipeline
        self.settings = settings
        self.metrics = metrics
        self.notices = notices
        self.clock = clock
        self.scheduler = FeedScheduler(self.scheduled, clock=clock)
        # Off when workers share the database: bot.cluster polls the feeds it leases instead.
        self.per_feed_jobs = True
        self.on_feeds_changed: Callable[[], None] | None = None  # besides resyncing the jobs
        self.last_poll_at: datetime | None = None

    async def every_feed(self) -> list[PollReport]:
        """Every feed once, now, concurrently (whatever its schedule or backoff says)."""
        feeds = await self.storage.list_feeds()
        return list(await asyncio.gather(*(self.poll(feed, force=True) for feed in feeds)))

    async def resync(self) -> None:
        """Called at start and after a feed is added or removed in chat."""
        if self.per_feed_jobs:
            self.scheduler.sync(await self.storage.list_feeds())

    async def feeds_changed(self) -> None:
        if self.on_feeds_changed is not None:
            self.on_feeds_changed()
        if self.scheduler.running:
            await self.resync()

    async def scheduled(self, feed_id: int) -> None:
        """What the scheduler runs when a feed's interval is up."""
        try:
            feed = await self.storage.get_feed_by_id(feed_id)
            if feed is None:
                await self.resync()
                return
            await self.poll(feed)
        except asyncio.CancelledError:
            # Shutdown cancels polls in flight; a poll commits in one transaction, so nothing
            # is half-written. Not an error worth APScheduler's traceback.
            log.debug("poll of feed %d cancelled by shutdown", feed_id)

    async def probe(self, url: str, name: str) -> ParsedFeed:
        """One fetch and parse of a URL as a chat-added feed (address guard on), nothing stored,
        with the reader the polls use (its limits included)."""
        probe = FeedState(
            id=0,
            name=name,
            url=url,
            interval=self.settings.fetch.default_interval,
            origin=Origin.CHAT,
        )
        reader = self.pipeline.reader
        result = await reader.fetch(probe)
        if result.status != FetchStatus.OK:
            raise FeedError(result.error or "no content")
        return await reader.parse(result, name)

    async def poll(self, feed: FeedState, *, force: bool = False) -> PollReport:
        """Raises LeaseLost when the feed's lease moved to another worker mid-poll (nothing of
        this poll was written: the new holder polls it)."""
        try:
            # The pipeline bounds the polls in flight ([fetch] concurrency).
            report = await self.pipeline.poll(feed, force=force)
        except LeaseLost:
            raise
        except Exception as exc:
            # A bug or a database failure in one feed's poll must not stop the others.
            log.exception("poll of feed %r crashed", feed.name)
            report = PollReport(feed.name, PollStatus.ERROR, error=f"internal error: {exc}")
            # Storage records the failed poll on the feed (a full disk shows in /status); the ops
            # channel hears of it like any other failing feed.
            try:
                await self.notices.feed_health(feed, report, feed.failures + 1)
            except Exception:
                log.exception("reporting the failed poll of feed %r failed", feed.name)
        self.last_poll_at = self.clock()
        if report.schedule is not None and self.per_feed_jobs:
            moved_from = self.scheduler.interval_of(feed.id)
            if self.scheduler.retime(feed.id, report.schedule.interval):
                log.debug(
                    "feed %r: polled %s, was every %s",
                    feed.name,
                    report.schedule.describe(),
                    format_duration(moved_from or feed.interval),
                )
        self.metrics.poll(report)
        if report.warning:
            log.info("feed %r: %s", feed.name, report.warning)
        if not feed.baseline_done and report.status == PollStatus.NEW:
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
