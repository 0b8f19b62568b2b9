"""The only module that touches APScheduler.

One job per feed, each on its own interval. Polls are spread evenly over the interval (feed i of n
starts at i/n of it) with a little jitter, so a thousand feeds never fire in the same second;
the first poll of each feed still happens within seconds of start-up. Jobs never overlap
(`max_instances=1`) and missed runs collapse into one (`coalesce=True`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.models import FeedState

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
            by_interval.setdefault(feed.interval, []).append(feed)
        for interval, group in by_interval.items():
            for index, feed in enumerate(sorted(group, key=lambda f: f.id)):
                if self._intervals.get(feed.id) == interval:
                    continue
                offset = interval * index / len(group)
                spread = min(STARTUP_SPREAD, interval)
                soon = spread * index / len(group) if first_run_soon else offset
                self._scheduler.add_job(
                    self._poll,
                    IntervalTrigger(
                        seconds=interval.total_seconds(),
                        start_date=now + offset,
                        jitter=min(interval.total_seconds() * 0.05, 15),
                        timezone=UTC,
                    ),
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
