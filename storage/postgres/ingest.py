"""What a poll reads (identity keys, stored stories, who has a card) and its one write."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg

from bot.core.identity import KeyKind
from bot.core.latency import SourceSighting
from bot.core.models import FeedState, StoredStory
from bot.core.store import (
    WINDOW_HITS_PER_KEY,
    IngestBatch,
    IngestSession,
    KeyHit,
    PollOutcome,
    StorageError,
    StoryRef,
    SupportsIngestBatch,
)
from storage.postgres.base import PostgresBase, story_of, utc
from storage.rows import STORY_COLUMNS, columns, sightings_of

_STORY = columns("s", STORY_COLUMNS)
_KINDS = {int(kind): kind for kind in KeyKind}

# Each key is one bounded index range (newest story ids first) through a LATERAL join: the
# database reads at most WINDOW_HITS_PER_KEY holders of a key however many it has.
_WINDOWED = """
    SELECT h.key, h.kind, h.story_id, h.seen_at
    FROM unnest($1::bigint[]) AS k (key)
    CROSS JOIN LATERAL (
        SELECT sk.key, sk.kind, sk.story_id, sk.seen_at FROM story_keys sk
        WHERE sk.key = k.key AND sk.seen_at >= $2
        ORDER BY sk.story_id DESC LIMIT $3
    ) h"""

# pg_advisory_lock(INGEST_LOCK): one ingest session at a time across the workers ("news", 3).
INGEST_LOCK = (0x6E657773, 3)

# ... and those of reaching it at all, for recording the failure on the feed.
_UNREACHABLE = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def refusal(exc: asyncpg.PostgresError) -> StorageError:
    """The database's refusal in the words SQLite uses for it, so the feed's last error reads
    the same on either engine (`cannot save the poll: FOREIGN KEY constraint failed ...`)."""
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return StorageError(f"FOREIGN KEY constraint failed ({exc})")
    if isinstance(exc, asyncpg.UniqueViolationError):
        return StorageError(f"UNIQUE constraint failed ({exc})")
    return StorageError(str(exc))


class IngestTables(PostgresBase):
    async def find_keys(
        self, keys: Sequence[int], *, since: datetime | None = None
    ) -> list[KeyHit]:
        """The stories holding these keys. With `since` (the near-duplicate window): only keys
        seen since then, and per key only the WINDOW_HITS_PER_KEY newest stories."""
        if not keys:
            return []
        unique = sorted(set(keys))
        if since is None:
            rows = await self._read(
                "SELECT key, kind, story_id, seen_at FROM story_keys WHERE key = ANY($1::bigint[])",
                unique,
            )
        else:
            rows = await self._read(_WINDOWED, unique, since, WINDOW_HITS_PER_KEY)
        # The keys of one story, and the stories of one poll, share one timestamp: converted
        # once each (a first poll of formulaic feeds reads millions of hits).
        moments: dict[datetime, datetime] = {}
        hits = []
        for key, kind, story_id, seen_at in rows:
            moment = moments.get(seen_at)
            if moment is None:
                moment = moments[seen_at] = seen_at.astimezone(UTC)
            hits.append(KeyHit(key, _KINDS[kind], story_id, moment))
        return hits

    async def load_stories(self, ids: Sequence[int]) -> dict[int, StoredStory]:
        if not ids:
            return {}
        rows = await self._read(
            f"SELECT {_STORY} FROM stories s WHERE s.id = ANY($1::bigint[])",  # noqa: S608
            list(ids),
        )
        return {row["id"]: story_of(row) for row in rows}

    async def story_texts(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        if not ids:
            return {}
        rows = await self._read(
            "SELECT id, title, summary FROM stories WHERE id = ANY($1::bigint[])", list(ids)
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    async def delivery_targets(self, story_ids: Sequence[int]) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {}
        if not story_ids:
            return found
        rows = await self._read(
            "SELECT story_id, target FROM deliveries WHERE story_id = ANY($1::bigint[])",
            list(story_ids),
        )
        for story_id, target in rows:
            found.setdefault(story_id, set()).add(target)
        return found

    async def story_carriers(self, story_ids: Sequence[int]) -> dict[int, list[SourceSighting]]:
        if not story_ids:
            return {}
        rows = await self._read(
            """SELECT story_id, feed_id, feed_name, seen_at, baseline FROM story_feeds
               WHERE story_id = ANY($1::bigint[]) ORDER BY story_id, seen_at, feed_id""",
            list(story_ids),
        )
        return sightings_of(rows, utc)

    @asynccontextmanager
    async def ingest_session(self) -> AsyncIterator[IngestSession]:
        """Each apply_ingest commits on its own, but one session at a time in the whole
        cluster: a plan must see what the plans before it wrote, or a story carried by two
        feeds polled by two workers at once is new to both, and posted twice. The lock is a
        session advisory lock, freed by the server if this worker dies holding it."""
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1, $2)", *INGEST_LOCK)
            try:
                yield self
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", *INGEST_LOCK)

    async def apply_ingest(
        self, feed: FeedState, plan: SupportsIngestBatch, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        batch = plan.ingest_batch()
        try:
            return await self._apply_ingest(feed, batch, outcome, now)
        except asyncpg.PostgresError as exc:
            # Nothing of the poll was saved (its fetch state neither, so the next poll fetches
            # the same stories again). The feed must not look healthy meanwhile: /status and
            # the feed list show the database's reason.
            refused = refusal(exc)
            await self._record_unsaved_poll(feed, refused, now)
            raise refused from exc

    async def _record_unsaved_poll(self, feed: FeedState, exc: Exception, now: datetime) -> None:
        failed = PollOutcome(
            ok=False, error=f"cannot save the poll: {exc}", failures=feed.failures + 1
        )
        try:
            await self._record_poll(self._pool, feed.id, failed, now, baseline_done=None)
        except _UNREACHABLE as again:  # the same outage can refuse this one too
            exc.add_note(f"(recording the failure on the feed failed too: {again})")

    async def _apply_ingest(
        self, feed: FeedState, batch: IngestBatch, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        async with self._transaction() as conn:
            await self._check_feed_lease(conn, feed.id)  # LeaseLost once another worker took it
            ids: dict[int, int] = {}
            if batch.new_stories:
                # Ids from the sequence, in the batch's order: they grow from poll to poll and
                # are never given twice (the sequence never goes back, whatever is pruned).
                taken = await conn.fetch(
                    "SELECT nextval('story_ids') FROM generate_series(1, $1)",
                    len(batch.new_stories),
                )
                numbers = sorted(row[0] for row in taken)
                ids = {row.label: numbers[i] for i, row in enumerate(batch.new_stories)}
                await conn.executemany(
                    """INSERT INTO stories (id, feed_id, feed_name, guid, url, title, summary,
                         content, published_at, first_seen_at, author, categories, image,
                         alertable, held, published_stamped)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                         $15, $16)""",
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
                            row.story.published,
                            now,
                            row.story.author,
                            json.dumps(row.story.categories, ensure_ascii=False),
                            row.story.image,
                            row.alertable,
                            row.held or None,
                            row.stamped,
                        )
                        for row in batch.new_stories
                    ],
                )

            def story_id(ref: StoryRef) -> int:
                return ids[ref.value] if ref.is_new else ref.value

            if batch.revisions:
                await conn.executemany(
                    """UPDATE stories SET title = $1, summary = $2, content = $3, url = $4,
                         guid = $5, author = $6, categories = $7, image = $8, updated_at = $9,
                         revision = revision + $10, alertable = alertable OR $11
                       WHERE id = $12""",
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
                            now,
                            int(r.notify),
                            r.alertable,
                            r.story_id,
                        )
                        for r in batch.revisions
                    ],
                )
                notified = [
                    (now, r.story_id, batch.max_updates) for r in batch.revisions if r.notify
                ]
                if notified:
                    await conn.executemany(
                        """UPDATE deliveries SET update_pending = true, next_attempt_at = $1
                           WHERE story_id = $2 AND status = 'sent' AND NOT digest
                             AND update_count < $3""",
                        notified,
                    )
            if batch.keys:
                await conn.executemany(
                    "INSERT INTO story_keys (key, story_id, kind, seen_at) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    [(k.key.value, story_id(k.story), int(k.key.kind), now) for k in batch.keys],
                )
            if batch.deliveries:
                # One row after another, in order: the cards' ids follow the batch.
                await conn.executemany(
                    """INSERT INTO deliveries (story_id, target, watchlists, subscriber, matched,
                         next_attempt_at, created_at, thread)
                       VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
                       ON CONFLICT (story_id, target) DO UPDATE SET
                         matched = excluded.matched, watchlists = excluded.watchlists,
                         thread = excluded.thread""",
                    [
                        (
                            story_id(d.story),
                            d.route.target,
                            json.dumps(d.route.watchlists, ensure_ascii=False),
                            d.route.subscriber,
                            json.dumps(d.route.matched, ensure_ascii=False),
                            now,
                            d.route.thread,
                        )
                        for d in batch.deliveries
                    ],
                )
            if batch.sources:
                # A feed new to a story makes its sent thread-mode cards due for an edit (their
                # sources line); not counted toward the update cap. Each (story, feed) once.
                await conn.execute(
                    """WITH added AS (
                         INSERT INTO story_sources (story_id, feed_name, seen_at)
                         SELECT s.id, src.feed, $3
                         FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY
                              AS src(story_id, feed, n)
                         JOIN stories s ON s.id = src.story_id
                         ORDER BY src.n
                         ON CONFLICT DO NOTHING
                         RETURNING story_id)
                       UPDATE deliveries SET update_pending = true, next_attempt_at = $3
                       WHERE story_id IN (SELECT story_id FROM added) AND status = 'sent'
                         AND NOT digest AND thread AND NOT update_pending""",
                    [r.story_id for r in batch.sources],
                    [r.feed for r in batch.sources],
                    now,
                )
            if batch.sightings:
                await conn.executemany(
                    """INSERT INTO story_sightings (story_id, feed_name, title, url, seen_at)
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
                    [(r.story_id, r.feed, r.title, r.link or "", now) for r in batch.sightings],
                )
            if batch.carriers:
                # The first sighting per feed and story stays: it is when the feed had it.
                await conn.executemany(
                    """INSERT INTO story_feeds (story_id, feed_id, feed_name, seen_at, baseline)
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
                    [
                        (story_id(r.story), r.feed_id, r.feed_name, now, r.baseline)
                        for r in batch.carriers
                    ],
                )
            await self._record_poll(conn, feed.id, outcome, now, baseline_done=True)
        return ids
