"""Feeds: the config file's and chat's, with what the last fetches taught us."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from bot.core.latency import CardTiming, SourceSighting
from bot.core.models import FeedSpec, FeedState, Origin
from bot.core.store import PollOutcome
from storage.errors import DuplicateName
from storage.rows import CARD_TIMINGS, FEED_COLUMNS, SHARED_SOURCES, card_timing_of, sightings_of
from storage.sqlite.base import SqliteBase, dt, feed_of, marks

log = logging.getLogger(__name__)

_FEED = ", ".join(FEED_COLUMNS)


class FeedTables(SqliteBase):
    async def sync_config_feeds(self, specs: Sequence[FeedSpec], now: datetime) -> None:
        """Make the database's config-owned feeds exactly those of the file. Feeds made in chat
        are left alone, unless the file now claims the name (the file wins, and we say so)."""
        async with self._transaction() as db:
            names = [s.name for s in specs]
            claimed = {n.casefold() for n in names}
            for name, origin in await self._all("SELECT name, origin FROM feeds WHERE active = 1"):
                if origin == Origin.CHAT and name.casefold() in claimed:
                    log.warning("feed %r was added in chat; the config file now manages it", name)
            for spec in specs:
                await db.execute(
                    """INSERT INTO feeds (name, url, interval_s, interval_fixed, origin,
                                        created_at, created_by)
                       VALUES (?, ?, ?, ?, 'config', ?, 'config file')
                       ON CONFLICT (name) DO UPDATE SET
                         -- a new interval in the file applies now, not after the next poll
                         poll_interval_s = CASE WHEN feeds.interval_s = excluded.interval_s
                                                 AND feeds.interval_fixed = excluded.interval_fixed
                                                THEN feeds.poll_interval_s END,
                         interval_fixed = excluded.interval_fixed,
                         -- a new URL is a new document: start its fetch state afresh
                         etag = CASE WHEN feeds.url = excluded.url THEN feeds.etag END,
                         last_modified = CASE WHEN feeds.url = excluded.url
                                              THEN feeds.last_modified END,
                         body_hash = CASE WHEN feeds.url = excluded.url THEN feeds.body_hash END,
                         failures = CASE WHEN feeds.url = excluded.url THEN feeds.failures
                                         ELSE 0 END,
                         retry_at = CASE WHEN feeds.url = excluded.url THEN feeds.retry_at END,
                         url = excluded.url, interval_s = excluded.interval_s,
                         origin = 'config', active = 1""",
                    (
                        spec.name,
                        spec.url,
                        int(spec.interval.total_seconds()),
                        spec.fixed,
                        now.timestamp(),
                    ),
                )
            placeholders = marks(len(names)) or "''"
            await db.execute(
                f"UPDATE feeds SET active = 0 WHERE origin = 'config' "  # noqa: S608 - placeholders only
                f"AND name NOT IN ({placeholders})",
                names,
            )

    async def add_feed(self, spec: FeedSpec, created_by: str, now: datetime) -> FeedState:
        try:
            async with self._transaction() as db:
                await db.execute("DELETE FROM feeds WHERE name = ? AND active = 0", (spec.name,))
                await db.execute(
                    """INSERT INTO feeds (name, url, interval_s, interval_fixed, origin,
                                        created_at, created_by)
                       VALUES (?, ?, ?, ?, ?, ?, ?)""",
                    (
                        spec.name,
                        spec.url,
                        int(spec.interval.total_seconds()),
                        spec.fixed,
                        spec.origin.value,
                        now.timestamp(),
                        created_by,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise DuplicateName(f"a feed named {spec.name!r} already exists") from exc
        feed = await self.get_feed(spec.name)
        assert feed is not None
        return feed

    async def remove_feed(self, name: str) -> bool:
        return (
            await self._write("DELETE FROM feeds WHERE name = ? AND origin = 'chat'", (name,)) > 0
        )

    async def list_feeds(self) -> list[FeedState]:
        rows = await self._read(
            f"SELECT {_FEED} FROM feeds WHERE active = 1 ORDER BY name"  # noqa: S608
        )
        return [feed_of(r) for r in rows]

    async def get_feed(self, name: str) -> FeedState | None:
        return await self._one_feed("name = ?", name)

    async def get_feed_by_id(self, feed_id: int) -> FeedState | None:
        return await self._one_feed("id = ?", feed_id)

    async def find_feed_by_url(self, url: str) -> FeedState | None:
        return await self._one_feed("url = ?", url)

    async def _one_feed(self, condition: str, value: object) -> FeedState | None:
        rows = await self._read(
            f"SELECT {_FEED} FROM feeds WHERE {condition} AND active = 1",  # noqa: S608 - constants
            (value,),
        )
        return feed_of(rows[0]) if rows else None

    async def record_poll(self, feed: FeedState, outcome: PollOutcome, now: datetime) -> None:
        async with self._lock:
            await self._record_poll(feed.id, outcome, now, baseline_done=None)

    async def stories_per_feed(self, since: datetime) -> dict[int, int]:
        rows = await self._read_tuples(
            "SELECT feed_id, count(*) FROM stories WHERE first_seen_at >= ? GROUP BY feed_id",
            (since.timestamp(),),
        )
        return {feed_id: count for feed_id, count in rows if feed_id is not None}

    async def card_timings(self, since: datetime) -> list[CardTiming]:
        rows = await self._read(CARD_TIMINGS.format(since="?"), (since.timestamp(),))
        return [card_timing_of(row, dt) for row in rows]

    async def shared_stories(self, since: datetime) -> dict[int, list[SourceSighting]]:
        rows = await self._read(SHARED_SOURCES.format(since="?"), (since.timestamp(),))
        return sightings_of(rows, dt)
