"""What a poll reads (identity keys, stored stories, who has a card) and its one write."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from bot.core.identity import KeyKind
from bot.core.models import FeedState, StoredStory
from bot.core.store import (
    WINDOW_HITS_PER_KEY,
    IngestBatch,
    KeyHit,
    PollOutcome,
    StoryRef,
    SupportsIngestBatch,
)
from storage.rows import STORY_COLUMNS, columns
from storage.sqlite.base import SqliteBase, chunks, marks, story_of, ts

# Keys per compound SELECT of a windowed lookup (SQLite allows 500 terms; 3 parameters per term
# stay under its 999-variable floor), and the few statement sizes used.
_KEYS_PER_COMPOUND = 200
_COMPOUND_SIZES = (8, 25, 50, 100, _KEYS_PER_COMPOUND)


@lru_cache(maxsize=len(_COMPOUND_SIZES))
def _compound(size: int) -> str:
    term = (
        "SELECT * FROM (SELECT key, kind, story_id, seen_at FROM story_keys"
        " WHERE key = ? AND seen_at >= ? ORDER BY story_id DESC LIMIT ?)"
    )
    return " UNION ALL ".join([term] * size)


class IngestTables(SqliteBase):
    async def find_keys(
        self, keys: Sequence[int], *, since: datetime | None = None
    ) -> list[KeyHit]:
        """The stories holding these keys. With `since` (the near-duplicate window): only keys
        seen since then, and per key only the WINDOW_HITS_PER_KEY newest stories."""
        if not keys:
            return []
        unique = sorted(set(keys))
        hits: list[KeyHit] = []
        kinds = {int(kind): kind for kind in KeyKind}
        # The keys of one story, and the stories of one poll, share one timestamp: converted
        # once each (a first poll of formulaic feeds reads millions of hits).
        moments: dict[float, datetime] = {}

        def hits_of(rows: Iterable[tuple[int, int, int, float]]) -> list[KeyHit]:
            found = []
            for key, kind, story_id, seen_at in rows:
                moment = moments.get(seen_at)
                if moment is None:
                    moment = moments[seen_at] = datetime.fromtimestamp(seen_at, UTC)
                found.append(KeyHit(key, kinds[kind], story_id, moment))
            return found

        async with self._lock:
            if since is None:
                for chunk in chunks(unique):
                    sql = f"SELECT key, kind, story_id, seen_at FROM story_keys WHERE key IN ({marks(len(chunk))})"  # noqa: S608
                    hits += hits_of(await self._all(sql, list(chunk)))
                return hits
            # One bounded index range per key (newest story ids first), as a compound SELECT:
            # SQLite has no LATERAL join, and a window function would still read every holder.
            stamp = since.timestamp()
            for chunk in chunks(unique, _KEYS_PER_COMPOUND):
                # A few statement sizes only, padded with the chunk's last key (its repeated
                # rows are dropped): each is compiled once and then cached by the driver, where
                # a statement of every length was compiled anew (about 2 ms for 200 terms).
                size = next(n for n in _COMPOUND_SIZES if n >= len(chunk))
                padded = [*chunk, *[chunk[-1]] * (size - len(chunk))]
                params: list[Any] = []
                for key in padded:
                    params += (key, stamp, WINDOW_HITS_PER_KEY)
                rows = await self._all(_compound(size), params)
                hits += hits_of(dict.fromkeys(rows))
        return hits

    async def load_stories(self, ids: Sequence[int]) -> dict[int, StoredStory]:
        found: dict[int, StoredStory] = {}
        if not ids:
            return found
        select = columns("s", STORY_COLUMNS)
        async with self._lock:
            for chunk in chunks(list(ids)):
                rows = await self._rows(
                    f"SELECT {select} FROM stories s WHERE s.id IN ({marks(len(chunk))})",  # noqa: S608
                    chunk,
                )
                for row in rows:
                    found[row["id"]] = story_of(row)
        return found

    async def delivery_targets(self, story_ids: Sequence[int]) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {}
        async with self._lock:
            for chunk in chunks(list(story_ids)):
                rows = await self._all(
                    f"SELECT story_id, target FROM deliveries WHERE story_id IN ({marks(len(chunk))})",  # noqa: S608
                    chunk,
                )
                for story_id, target in rows:
                    found.setdefault(story_id, set()).add(target)
        return found

    async def apply_ingest(
        self, feed: FeedState, plan: SupportsIngestBatch, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        batch = plan.ingest_batch()
        try:
            return await self._apply_ingest(feed, batch, outcome, now)
        except sqlite3.Error as exc:
            # Nothing of the poll was saved (its fetch state neither, so the next poll fetches
            # the same stories again). The feed must not look healthy meanwhile: /status and
            # the feed list show the database's reason, e.g. "database or disk is full".
            await self._record_unsaved_poll(feed, exc, now)
            raise

    async def _record_unsaved_poll(
        self, feed: FeedState, exc: sqlite3.Error, now: datetime
    ) -> None:
        failed = PollOutcome(
            ok=False, error=f"cannot save the poll: {exc}", failures=feed.failures + 1
        )
        try:
            async with self._lock:
                await self._record_poll(self._db, feed.id, failed, now, baseline_done=None)
        except sqlite3.Error as again:  # the same full disk can refuse this one too
            exc.add_note(f"(recording the failure on the feed failed too: {again})")

    async def _apply_ingest(
        self, feed: FeedState, batch: IngestBatch, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        stamp = now.timestamp()
        async with self._transaction() as db:
            ids: dict[int, int] = {}
            if batch.new_stories:
                # Inside BEGIN IMMEDIATE there is one writer: a range of ids is taken up front,
                # which lets stories, keys and deliveries go in as three batched statements.
                # Past the sequence and past every stored id (a restored backup, rows written
                # by hand), so an id is never given twice.
                last = await self._scalar(
                    """SELECT max(coalesce((SELECT last_id FROM id_sequences
                                            WHERE name = 'stories'), 0),
                                   coalesce((SELECT max(id) FROM stories), 0))"""
                )
                ids = {row.label: last + 1 + i for i, row in enumerate(batch.new_stories)}
                await db.execute(
                    """INSERT INTO id_sequences (name, last_id) VALUES ('stories', ?)
                       ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id""",
                    (last + len(batch.new_stories),),
                )
                await db.executemany(
                    """INSERT INTO stories (id, feed_id, feed_name, guid, url, title, summary,
                         content, published_at, first_seen_at, author, categories, image,
                         alertable)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [
                        (
                            ids[row.label],
                            feed.id,
                            row.story.feed,
                            row.story.guid,
                            row.story.link,
                            row.story.title,
                            row.story.summary,
                            row.story.content,
                            ts(row.story.published),
                            stamp,
                            row.story.author,
                            json.dumps(row.story.categories, ensure_ascii=False),
                            row.story.image,
                            int(row.alertable),
                        )
                        for row in batch.new_stories
                    ],
                )

            def story_id(ref: StoryRef) -> int:
                return ids[ref.value] if ref.is_new else ref.value

            if batch.revisions:
                await db.executemany(
                    """UPDATE stories SET title = ?, summary = ?, content = ?, url = ?, guid = ?,
                         author = ?, categories = ?, image = ?, updated_at = ?,
                         revision = revision + ?, alertable = max(alertable, ?)
                       WHERE id = ?""",
                    [
                        (
                            r.story.title,
                            r.story.summary,
                            r.story.content,
                            r.story.link,
                            r.story.guid,
                            r.story.author,
                            json.dumps(r.story.categories, ensure_ascii=False),
                            r.story.image,
                            stamp,
                            int(r.notify),
                            int(r.alertable),
                            r.story_id,
                        )
                        for r in batch.revisions
                    ],
                )
                await db.executemany(
                    """UPDATE deliveries SET update_pending = 1, next_attempt_at = ?
                       WHERE story_id = ? AND status = 'sent' AND digest = 0
                         AND update_count < ?""",
                    [(stamp, r.story_id, batch.max_updates) for r in batch.revisions if r.notify],
                )
            if batch.keys:
                await db.executemany(
                    "INSERT OR IGNORE INTO story_keys (key, story_id, kind, seen_at) "
                    "VALUES (?, ?, ?, ?)",
                    [(k.key.value, story_id(k.story), int(k.key.kind), stamp) for k in batch.keys],
                )
            if batch.deliveries:
                await db.executemany(
                    """INSERT INTO deliveries (story_id, target, watchlists, subscriber, matched,
                         next_attempt_at, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (story_id, target) DO UPDATE SET
                         matched = excluded.matched, watchlists = excluded.watchlists""",
                    [
                        (
                            story_id(d.story),
                            d.route.target,
                            json.dumps(d.route.watchlists, ensure_ascii=False),
                            d.route.subscriber,
                            json.dumps(d.route.matched, ensure_ascii=False),
                            stamp,
                            stamp,
                        )
                        for d in batch.deliveries
                    ],
                )
            await self._record_poll(db, feed.id, outcome, now, baseline_done=True)
        return ids
