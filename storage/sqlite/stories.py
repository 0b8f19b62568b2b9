"""Reading stories back (chat's /recent, counts) and pruning what is past its retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.identity import KeyKind
from bot.core.models import Sighting, StoredStory
from storage.rows import STORY_COLUMNS, columns
from storage.sqlite.base import SqliteBase, story_of

_STORY = columns("s", STORY_COLUMNS)


class StoryTables(SqliteBase):
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
        sql = f"SELECT {_STORY} FROM stories s WHERE s.first_seen_at >= ?"  # noqa: S608
        params: list[Any] = [since.timestamp()]
        if after is not None:
            sql += " AND (s.first_seen_at < ? OR (s.first_seen_at = ? AND s.id < ?))"
            seen = after.first_seen.timestamp()
            params += [seen, seen, after.id]
        if feed is not None:
            sql += " AND s.feed_name = ? COLLATE NOCASE"
            params.append(feed)
        sql += " ORDER BY s.first_seen_at DESC, s.id DESC LIMIT ?"
        params.append(limit)
        return [story_of(r) for r in await self._read(sql, params)]

    async def recent_titles(self, since: datetime, *, limit: int) -> list[tuple[int, str]]:
        rows = await self._read_tuples(
            """SELECT id, title FROM stories WHERE first_seen_at >= ?
               ORDER BY first_seen_at DESC, id DESC LIMIT ?""",
            [since.timestamp(), limit],
        )
        return [(r[0], r[1]) for r in rows]

    async def sightings(self, story_id: int) -> list[Sighting]:
        rows = await self._read(
            """SELECT feed_name, title, url, seen_at FROM story_sightings WHERE story_id = ?
               ORDER BY seen_at, feed_name, url""",
            [story_id],
        )
        return [
            Sighting(story_id, r[0], r[1], r[2] or None, datetime.fromtimestamp(r[3], UTC))
            for r in rows
        ]

    async def count_stories(self) -> int:
        async with self._lock:
            count: int = await self._scalar("SELECT count(*) FROM stories")
            return count

    async def prune(
        self, now: datetime, *, stories: timedelta, keys: timedelta, window: timedelta
    ) -> tuple[int, int]:
        """Drop stories (and their deliveries) older than `stories`; drop permanent identity
        keys older than `keys` and windowed ones once outside the window."""
        async with self._transaction() as db:
            gone = await db.execute(
                "DELETE FROM stories WHERE first_seen_at < ?", ((now - stories).timestamp(),)
            )
            keys_gone = await db.execute(
                "DELETE FROM story_keys WHERE kind IN (?, ?, ?) AND seen_at < ?",
                (
                    int(KeyKind.GUID),
                    int(KeyKind.URL),
                    int(KeyKind.TITLE_DATE),
                    (now - keys).timestamp(),
                ),
            )
            fuzzy_gone = await db.execute(
                "DELETE FROM story_keys WHERE kind IN (?, ?) AND seen_at < ?",
                (int(KeyKind.TITLE), int(KeyKind.SHINGLE), (now - window).timestamp()),
            )
            return gone.rowcount, keys_gone.rowcount + fuzzy_gone.rowcount
