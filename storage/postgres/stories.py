"""Reading stories back (chat's /recent, counts) and pruning what is past its retention."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.core.identity import KeyKind
from bot.core.models import Sighting, StoredStory
from storage.postgres.base import PostgresBase, fold, rowcount, story_of
from storage.rows import STORY_COLUMNS, columns

_STORY = columns("s", STORY_COLUMNS)
_PERMANENT = [int(KeyKind.GUID), int(KeyKind.URL), int(KeyKind.TITLE_DATE)]
_WINDOWED = [int(KeyKind.TITLE), int(KeyKind.SHINGLE)]


class StoryTables(PostgresBase):
    async def recent_stories(
        self,
        since: datetime,
        *,
        limit: int = 5000,
        feed: str | None = None,
        after: StoredStory | None = None,
    ) -> list[StoredStory]:
        """Stories first seen since `since`, newest first. `after`: the last story of the
        previous page (keyset paging, so a long window is read a page at a time)."""
        params: list[Any] = [since]
        sql = f"SELECT {_STORY} FROM stories s WHERE s.first_seen_at >= $1"  # noqa: S608
        if after is not None:
            params += [after.first_seen, after.id]
            sql += " AND (s.first_seen_at, s.id) < ($2, $3)"
        if feed is not None:
            params.append(fold(feed))
            sql += f" AND ascii_lower(s.feed_name) = ${len(params)}"
        params.append(limit)
        sql += f" ORDER BY s.first_seen_at DESC, s.id DESC LIMIT ${len(params)}"
        return [story_of(r) for r in await self._read(sql, *params)]

    async def recent_titles(self, since: datetime, *, limit: int) -> list[tuple[int, str]]:
        rows = await self._read(
            """SELECT id, title FROM stories WHERE first_seen_at >= $1
               ORDER BY first_seen_at DESC, id DESC LIMIT $2""",
            since,
            limit,
        )
        return [(r[0], r[1]) for r in rows]

    async def sightings(self, story_id: int) -> list[Sighting]:
        rows = await self._read(
            """SELECT feed_name, title, url, seen_at FROM story_sightings WHERE story_id = $1
               ORDER BY seen_at, feed_name, url""",
            story_id,
        )
        return [Sighting(story_id, r[0], r[1], r[2] or None, r[3]) for r in rows]

    async def count_stories(self) -> int:
        count: int = await self._scalar("SELECT count(*) FROM stories")
        return count

    async def prune(
        self, now: datetime, *, stories: timedelta, keys: timedelta, window: timedelta
    ) -> tuple[int, int]:
        """Drop stories (and, by cascade, their deliveries) older than `stories`; drop permanent
        identity keys older than `keys` and windowed ones once outside the window."""
        async with self._transaction() as conn:
            gone = await conn.execute("DELETE FROM stories WHERE first_seen_at < $1", now - stories)
            keys_gone = await conn.execute(
                "DELETE FROM story_keys WHERE kind = ANY($1::smallint[]) AND seen_at < $2",
                _PERMANENT,
                now - keys,
            )
            fuzzy_gone = await conn.execute(
                "DELETE FROM story_keys WHERE kind = ANY($1::smallint[]) AND seen_at < $2",
                _WINDOWED,
                now - window,
            )
        return rowcount(gone), rowcount(keys_gone) + rowcount(fuzzy_gone)
