"""Feeds, in memory."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from bot.core.latency import CardTiming, SourceSighting
from bot.core.models import DeliveryStatus, FeedSpec, FeedState, Origin
from bot.core.store import DuplicateName, PollOutcome
from storage.memory.base import FeedRow, MemoryBase, moment, nocase, ts

log = logging.getLogger(__name__)


class FeedTables(MemoryBase):
    async def sync_config_feeds(self, specs: Sequence[FeedSpec], now: datetime) -> None:
        claimed = {s.name.casefold() for s in specs}
        for feed in self._feeds.values():
            if feed.active and feed.origin == Origin.CHAT and feed.name.casefold() in claimed:
                log.warning("feed %r was added in chat; the config file now manages it", feed.name)
        for spec in specs:
            found = self._feed_named(spec.name)
            if found is None:
                new = FeedRow(
                    self._next_id("feeds"),
                    spec.name,
                    spec.url,
                    spec.interval,
                    Origin.CONFIG,
                    "config file",
                    fixed=spec.fixed,
                )
                self._feeds[new.id] = new
                continue
            if found.url != spec.url:  # a new URL is a new document: its fetch state afresh
                found.etag = found.last_modified = found.body_hash = None
                found.failures, found.retry_at = 0, None
            if (found.interval, found.fixed) != (spec.interval, spec.fixed):
                found.schedule = None  # a new interval in the file applies now
            found.url, found.interval, found.fixed = spec.url, spec.interval, spec.fixed
            found.origin, found.active = Origin.CONFIG, True
        names = {nocase(s.name) for s in specs}
        for feed in self._feeds.values():
            if feed.origin == Origin.CONFIG and nocase(feed.name) not in names:
                feed.active = False

    async def add_feed(self, spec: FeedSpec, created_by: str, now: datetime) -> FeedState:
        existing = self._feed_named(spec.name)
        if existing is not None and existing.active:
            raise DuplicateName(f"a feed named {spec.name!r} already exists")
        if existing is not None:
            self._drop_feed(existing)
        feed = FeedRow(
            self._next_id("feeds"),
            spec.name,
            spec.url,
            spec.interval,
            spec.origin,
            created_by,
            fixed=spec.fixed,
        )
        self._feeds[feed.id] = feed
        return feed.state()

    async def remove_feed(self, name: str) -> bool:
        feed = self._feed_named(name)
        if feed is None or feed.origin != Origin.CHAT:
            return False
        self._drop_feed(feed)
        return True

    async def list_feeds(self) -> list[FeedState]:
        active = sorted((f for f in self._feeds.values() if f.active), key=lambda f: nocase(f.name))
        return [f.state() for f in active]

    async def get_feed(self, name: str) -> FeedState | None:
        feed = self._feed_named(name)
        return feed.state() if feed is not None and feed.active else None

    async def get_feed_by_id(self, feed_id: int) -> FeedState | None:
        feed = self._feeds.get(feed_id)
        return feed.state() if feed is not None and feed.active else None

    async def find_feed_by_url(self, url: str) -> FeedState | None:
        found = (f for f in self._feeds.values() if f.url == url and f.active)
        feed = next(found, None)
        return None if feed is None else feed.state()

    async def record_poll(self, feed: FeedState, outcome: PollOutcome, now: datetime) -> None:
        self._record_poll(feed.id, outcome, now, baseline_done=None)

    async def stories_per_feed(self, since: datetime) -> dict[int, int]:
        counts: dict[int, int] = {}
        for story in self._stories.values():
            if story.first_seen >= ts(since) and story.feed_id is not None:
                counts[story.feed_id] = counts.get(story.feed_id, 0) + 1
        return counts

    async def card_timings(self, since: datetime) -> list[CardTiming]:
        first: dict[int, float] = {}
        for card in self._deliveries.values():
            if card.status == DeliveryStatus.SENT and card.sent_at is not None:
                first[card.story_id] = min(card.sent_at, first.get(card.story_id, card.sent_at))
        found = []
        for story_id, sent in first.items():
            row = self._stories.get(story_id)
            if row is None or sent < ts(since):
                continue
            found.append(
                CardTiming(
                    row.feed_id,
                    row.story.feed,
                    row.story.published,
                    row.published_stamped,
                    moment(row.first_seen),
                    moment(sent),
                )
            )
        return found

    async def shared_stories(self, since: datetime) -> dict[int, list[SourceSighting]]:
        return {
            story_id: self._carrier_sightings(story_id)
            for story_id, carried in sorted(self._carriers.items())
            if len(carried) > 1 and max(at for _, at, _ in carried.values()) >= ts(since)
        }
