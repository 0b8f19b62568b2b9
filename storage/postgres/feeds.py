"""Feeds: the config file's and chat's, with what the last fetches taught us."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from bot.core.latency import CardTiming, SourceSighting
from bot.core.models import FeedSpec, FeedState, Origin
from bot.core.store import PollOutcome
from storage.errors import DuplicateName
from storage.postgres.base import PostgresBase, feed_of, fold, utc
from storage.rows import CARD_TIMINGS, FEED_COLUMNS, SHARED_SOURCES, card_timing_of, sightings_of

log = logging.getLogger(__name__)

_FEED = ", ".join(FEED_COLUMNS)


class FeedTables(PostgresBase):
    async def sync_config_feeds(self, specs: Sequence[FeedSpec], now: datetime) -> None:
        """Make the database's config-owned feeds exactly those of the file. Feeds made in chat
        are left alone, unless the file now claims the name (the file wins, and we say so)."""
        async with self._transaction() as conn:
            claimed = [fold(s.name) for s in specs]
            taken = await conn.fetch(
                """SELECT name FROM feeds WHERE active AND origin = 'chat'
                   AND ascii_lower(name) = ANY($1::text[])""",
                claimed,
            )
            for (name,) in taken:
                log.warning("feed %r was added in chat; the config file now manages it", name)
            await conn.executemany(
                """INSERT INTO feeds (name, url, interval_s, interval_fixed, origin, created_at,
                                    created_by)
                   VALUES ($1, $2, $3, $5, 'config', $4, 'config file')
                   ON CONFLICT (ascii_lower(name)) DO UPDATE SET
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
                     origin = 'config', active = true""",
                [(s.name, s.url, int(s.interval.total_seconds()), now, s.fixed) for s in specs],
            )
            await conn.execute(
                """UPDATE feeds SET active = false WHERE origin = 'config'
                   AND ascii_lower(name) <> ALL($1::text[])""",
                claimed,
            )

    async def add_feed(self, spec: FeedSpec, created_by: str, now: datetime) -> FeedState:
        try:
            async with self._transaction() as conn:
                await conn.execute(
                    "DELETE FROM feeds WHERE ascii_lower(name) = $1 AND NOT active",
                    fold(spec.name),
                )
                await conn.execute(
                    """INSERT INTO feeds (name, url, interval_s, interval_fixed, origin,
                                        created_at, created_by)
                       VALUES ($1, $2, $3, $7, $4, $5, $6)""",
                    spec.name,
                    spec.url,
                    int(spec.interval.total_seconds()),
                    spec.origin.value,
                    now,
                    created_by,
                    spec.fixed,
                )
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateName(f"a feed named {spec.name!r} already exists") from exc
        feed = await self.get_feed(spec.name)
        assert feed is not None
        return feed

    async def remove_feed(self, name: str) -> bool:
        removed = await self._write(
            "DELETE FROM feeds WHERE ascii_lower(name) = $1 AND origin = $2",
            fold(name),
            Origin.CHAT.value,
        )
        return removed > 0

    async def list_feeds(self) -> list[FeedState]:
        rows = await self._read(
            f'SELECT {_FEED} FROM feeds WHERE active ORDER BY ascii_lower(name) COLLATE "C"'  # noqa: S608
        )
        return [feed_of(r) for r in rows]

    async def get_feed(self, name: str) -> FeedState | None:
        return await self._one_feed("ascii_lower(name) = $1", fold(name))

    async def get_feed_by_id(self, feed_id: int) -> FeedState | None:
        return await self._one_feed("id = $1", feed_id)

    async def find_feed_by_url(self, url: str) -> FeedState | None:
        return await self._one_feed("url = $1", url)

    async def _one_feed(self, condition: str, value: object) -> FeedState | None:
        rows = await self._read(
            f"SELECT {_FEED} FROM feeds WHERE {condition} AND active ORDER BY id LIMIT 1",  # noqa: S608 - constants
            value,
        )
        return feed_of(rows[0]) if rows else None

    async def record_poll(self, feed: FeedState, outcome: PollOutcome, now: datetime) -> None:
        await self._record_poll(self._pool, feed.id, outcome, now, baseline_done=None)

    async def stories_per_feed(self, since: datetime) -> dict[int, int]:
        rows = await self._read(
            """SELECT feed_id, count(*) FROM stories WHERE first_seen_at >= $1
               AND feed_id IS NOT NULL GROUP BY feed_id""",
            since,
        )
        return {feed_id: count for feed_id, count in rows}

    async def card_timings(self, since: datetime) -> list[CardTiming]:
        rows = await self._read(CARD_TIMINGS.format(since="$1"), since)
        return [card_timing_of(row, utc) for row in rows]

    async def shared_stories(self, since: datetime) -> dict[int, list[SourceSighting]]:
        return sightings_of(await self._read(SHARED_SOURCES.format(since="$1"), since), utc)
