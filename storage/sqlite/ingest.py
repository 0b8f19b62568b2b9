"""What a poll reads (identity keys, stored stories, who has a card) and its one write."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache, partial
from operator import itemgetter
from typing import Any

from bot.core.identity import KeyKind
from bot.core.latency import SourceSighting
from bot.core.models import FeedState, StoredStory
from bot.core.store import (
    WINDOW_HITS_PER_KEY,
    IngestBatch,
    IngestSession,
    KeyHit,
    PollOutcome,
    StoryRef,
    SupportsIngestBatch,
)
from storage.rows import STORY_COLUMNS, columns, sightings_of
from storage.sqlite.base import (
    SQL_VARIABLES,
    SqliteBase,
    begin,
    chunks,
    commit,
    dt,
    fetch_scalar,
    in_savepoint,
    in_transaction,
    marks,
    rollback,
    story_of,
    ts,
    write_poll,
)

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
        async with self._lock:
            return await _Session(self).find_keys(keys, since=since)

    async def load_stories(self, ids: Sequence[int]) -> dict[int, StoredStory]:
        async with self._lock:
            return await _Session(self).load_stories(ids)

    async def story_texts(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        async with self._lock:
            return await _Session(self).story_texts(ids)

    async def delivery_targets(self, story_ids: Sequence[int]) -> dict[int, set[str]]:
        async with self._lock:
            return await _Session(self).delivery_targets(story_ids)

    async def story_carriers(self, story_ids: Sequence[int]) -> dict[int, list[SourceSighting]]:
        async with self._lock:
            return await _Session(self).story_carriers(story_ids)

    async def apply_ingest(
        self, feed: FeedState, plan: SupportsIngestBatch, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        write = partial(
            _write_poll_batch, feed=feed, batch=plan.ingest_batch(), outcome=outcome, now=now
        )
        try:
            async with self._lock:
                return await self._run(partial(in_transaction, body=write))
        except sqlite3.Error as exc:
            # Nothing of the poll was saved (its fetch state neither, so the next poll fetches
            # the same stories again). The feed must not look healthy meanwhile: /status and
            # the feed list show the database's reason, e.g. "database or disk is full".
            async with self._lock:
                await self._record_unsaved_poll(feed, exc, now)
            raise

    @asynccontextmanager
    async def ingest_session(self) -> AsyncIterator[IngestSession]:
        """One transaction for several polls: each poll's write is a savepoint in it. A commit
        rewrites every index page the transaction touched, and a first poll's identity keys
        land all over the key index: one commit per poll wrote ten times what it added."""
        async with self._lock:
            session = _Session(self)
            try:
                # Inside the try: a BEGIN whose awaiting task is cancelled (shutdown) still runs
                # on the connection's thread, and must be rolled back before the lock is free.
                await self._run(begin)
                yield session
            except BaseException as exc:
                await self._run(partial(rollback, cause=exc))
                raise
            try:
                await self._run(commit)
            except sqlite3.Error as exc:
                await self._run(partial(rollback, cause=exc))
                cause = exc if session.lost is None else sqlite3.OperationalError(str(session.lost))
                for feed, now in session.applied:
                    await self._record_unsaved_poll(feed, cause, now)
                raise cause from exc

    async def _record_unsaved_poll(
        self, feed: FeedState, exc: sqlite3.Error, now: datetime
    ) -> None:
        """Callers hold the lock."""
        failed = PollOutcome(
            ok=False, error=f"cannot save the poll: {exc}", failures=feed.failures + 1
        )
        try:
            await self._record_poll(feed.id, failed, now, baseline_done=None)
        except sqlite3.Error as again:  # the same full disk can refuse this one too
            exc.add_note(f"(recording the failure on the feed failed too: {again})")


class _Session:
    """A poll's reads and writes on the store's connection; the caller holds its lock (and,
    in an ingest session, its transaction)."""

    def __init__(self, store: IngestTables) -> None:
        self._store = store
        self.applied: list[tuple[FeedState, datetime]] = []
        self.lost: sqlite3.Error | None = None  # why the session's transaction ended early

    async def find_keys(
        self, keys: Sequence[int], *, since: datetime | None = None
    ) -> list[KeyHit]:
        """The stories holding these keys. With `since` (the near-duplicate window): only keys
        seen since then, and per key only the WINDOW_HITS_PER_KEY newest stories."""
        if not keys:
            return []
        unique = sorted(set(keys))
        if since is None:
            rows = await self._store._run(partial(_select_in, sql=_STRONG_ROWS, values=unique))
        else:
            rows = await self._store._run(
                partial(_windowed_rows, keys=unique, since=since.timestamp())
            )
        # A first poll of formulaic feeds reads millions of hits: the keys of one story, and
        # the stories of one poll, share one timestamp, converted once each; tuple.__new__
        # builds a KeyHit without the Python-level constructor call.
        moments = {at: datetime.fromtimestamp(at, UTC) for at in set(map(_SEEN_AT, rows))}
        new, kinds = tuple.__new__, _KINDS
        return [new(KeyHit, (k, kinds[kind], s, moments[at])) for k, kind, s, at in rows]

    async def load_stories(self, ids: Sequence[int]) -> dict[int, StoredStory]:
        if not ids:
            return {}
        rows = await self._store._run(
            partial(_select_in, sql=_STORY_ROWS, values=list(ids), by_name=True)
        )
        return {row["id"]: story_of(row) for row in rows}

    async def story_texts(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        if not ids:
            return {}
        rows = await self._store._run(partial(_select_in, sql=_TEXT_ROWS, values=list(ids)))
        return {story_id: (title, summary) for story_id, title, summary in rows}

    async def delivery_targets(self, story_ids: Sequence[int]) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {}
        if not story_ids:
            return found
        rows = await self._store._run(partial(_select_in, sql=_TARGET_ROWS, values=list(story_ids)))
        for story_id, target in rows:
            found.setdefault(story_id, set()).add(target)
        return found

    async def story_carriers(self, story_ids: Sequence[int]) -> dict[int, list[SourceSighting]]:
        if not story_ids:
            return {}
        rows = await self._store._run(
            partial(_select_in, sql=_SOURCE_ROWS, values=list(story_ids), by_name=True)
        )
        rows.sort(key=lambda row: (row["story_id"], row["seen_at"], row["feed_id"]))
        return sightings_of(rows, dt)

    async def apply_ingest(
        self, feed: FeedState, plan: SupportsIngestBatch, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        """The poll's write as a savepoint of the session's transaction: undone alone if it
        fails, committed with the others when the session ends."""
        write = partial(
            _write_poll_batch, feed=feed, batch=plan.ingest_batch(), outcome=outcome, now=now
        )
        try:
            if self.lost is not None:
                raise sqlite3.OperationalError(str(self.lost))
            ids = await self._store._run(partial(in_savepoint, body=write))
        except sqlite3.Error as exc:
            if self.lost is None and not await self._store._run(_in_transaction):
                # SQLite gave up the whole transaction (a full disk): the polls before this
                # one are lost too, and nothing more can be written in this session.
                self.lost = exc
            await self._store._record_unsaved_poll(feed, exc, now)
            raise
        self.applied.append((feed, now))
        return ids


# --- jobs on the connection's thread (SqliteBase._run): a poll's statements in one hop ------------


def _in_transaction(conn: sqlite3.Connection) -> bool:
    return conn.in_transaction


def _windowed_rows(
    conn: sqlite3.Connection, keys: Sequence[int], since: float
) -> list[tuple[int, int, int, float]]:
    # One bounded index range per key (newest story ids first), as a compound SELECT: SQLite
    # has no LATERAL join, and a window function would still read every holder.
    rows: list[tuple[int, int, int, float]] = []
    for chunk in chunks(keys, _KEYS_PER_COMPOUND):
        # A few statement sizes only, padded with the chunk's last key (its repeated rows are
        # dropped): each is compiled once and then cached by the driver, where a statement of
        # every length was compiled anew (about 2 ms for 200 terms).
        size = next(n for n in _COMPOUND_SIZES if n >= len(chunk))
        padded = [*chunk, *[chunk[-1]] * (size - len(chunk))]
        params: list[Any] = []
        for key in padded:
            params += (key, since, WINDOW_HITS_PER_KEY)
        found = conn.execute(_compound(size), params).fetchall()
        rows += dict.fromkeys(found) if size > len(chunk) else found
    return rows


def _select_in(
    conn: sqlite3.Connection, sql: str, values: Sequence[int], *, by_name: bool = False
) -> list[Any]:
    """`sql`, whose `{marks}` is an IN list, over `values` in chunks within SQLite's limit on
    parameters; `by_name`: rows read by column name (sqlite3.Row), else plain tuples."""
    found: list[Any] = []
    for chunk in chunks(values):
        # Padded to one of a few lengths with its last value (an IN list ignores repeats):
        # the driver caches a compiled statement by its text, and a poll's lists are of every
        # length (compiling one of a few hundred terms costs more than running it).
        size = next(n for n in _IN_SIZES if n >= len(chunk))
        padded = [*chunk, *[chunk[-1]] * (size - len(chunk))]
        cursor = conn.execute(_in_list(sql, size), padded)
        if by_name:
            cursor.row_factory = sqlite3.Row  # applied as rows are fetched
        found += cursor.fetchall()
    return found


_IN_SIZES = (8, 32, 128, 512, SQL_VARIABLES)


@lru_cache(maxsize=64)
def _in_list(sql: str, size: int) -> str:
    return sql.format(marks=marks(size))


_KINDS = {int(kind): kind for kind in KeyKind}
_SEEN_AT = itemgetter(3)
_STRONG_ROWS = "SELECT key, kind, story_id, seen_at FROM story_keys WHERE key IN ({marks})"
_STORY_ROWS = f"SELECT {columns('s', STORY_COLUMNS)} FROM stories s WHERE s.id IN ({{marks}})"  # noqa: S608 - column names are constants
_TEXT_ROWS = "SELECT id, title, summary FROM stories WHERE id IN ({marks})"
_TARGET_ROWS = "SELECT story_id, target FROM deliveries WHERE story_id IN ({marks})"
_SOURCE_ROWS = (
    "SELECT story_id, feed_id, feed_name, seen_at, baseline FROM story_feeds"
    " WHERE story_id IN ({marks})"
)


def _write_poll_batch(
    conn: sqlite3.Connection,
    feed: FeedState,
    batch: IngestBatch,
    outcome: PollOutcome,
    now: datetime,
) -> dict[int, int]:
    """A poll's one write, inside the caller's transaction; returns the new stories' ids by
    their labels."""
    stamp = now.timestamp()
    ids: dict[int, int] = {}
    if batch.new_stories:
        # Inside BEGIN IMMEDIATE there is one writer: a range of ids is taken up front,
        # which lets stories, keys and deliveries go in as three batched statements.
        # Past the sequence and past every stored id (a restored backup, rows written
        # by hand), so an id is never given twice.
        last = fetch_scalar(
            conn,
            """SELECT max(coalesce((SELECT last_id FROM id_sequences
                                    WHERE name = 'stories'), 0),
                           coalesce((SELECT max(id) FROM stories), 0))""",
        )
        ids = {row.label: last + 1 + i for i, row in enumerate(batch.new_stories)}
        conn.execute(
            """INSERT INTO id_sequences (name, last_id) VALUES ('stories', ?)
               ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id""",
            (last + len(batch.new_stories),),
        )
        conn.executemany(
            """INSERT INTO stories (id, feed_id, feed_name, guid, url, title, summary,
                 content, published_at, first_seen_at, author, categories, image,
                 alertable, held, published_stamped)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
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
                    row.held or None,
                    int(row.stamped),
                )
                for row in batch.new_stories
            ],
        )

    def story_id(ref: StoryRef) -> int:
        return ids[ref.value] if ref.is_new else ref.value

    if batch.revisions:
        conn.executemany(
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
        conn.executemany(
            """UPDATE deliveries SET update_pending = 1, next_attempt_at = ?
               WHERE story_id = ? AND status = 'sent' AND digest = 0
                 AND update_count < ?""",
            [(stamp, r.story_id, batch.max_updates) for r in batch.revisions if r.notify],
        )
    if batch.keys:
        conn.executemany(
            "INSERT OR IGNORE INTO story_keys (key, story_id, kind, seen_at) VALUES (?, ?, ?, ?)",
            [(k.key.value, story_id(k.story), int(k.key.kind), stamp) for k in batch.keys],
        )
    if batch.deliveries:
        conn.executemany(
            """INSERT INTO deliveries (story_id, target, watchlists, subscriber, matched,
                 next_attempt_at, created_at, thread)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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
                    stamp,
                    stamp,
                    int(d.route.thread),
                )
                for d in batch.deliveries
            ],
        )
    for source in batch.sources:
        added = conn.execute(
            """INSERT INTO story_sources (story_id, feed_name, seen_at)
               SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM stories WHERE id = ?)
               ON CONFLICT DO NOTHING""",
            (source.story_id, source.feed, stamp, source.story_id),
        ).rowcount
        if added:
            # A feed new to the story: its sent thread-mode cards name it (not counted toward
            # the update cap: one edit per feed, and only in thread mode).
            conn.execute(
                """UPDATE deliveries SET update_pending = 1, next_attempt_at = ?
                   WHERE story_id = ? AND status = 'sent' AND digest = 0 AND thread = 1
                     AND update_pending = 0""",
                (stamp, source.story_id),
            )
    if batch.sightings:
        conn.executemany(
            """INSERT OR IGNORE INTO story_sightings (story_id, feed_name, title, url, seen_at)
               VALUES (?, ?, ?, ?, ?)""",
            [(r.story_id, r.feed, r.title, r.link or "", stamp) for r in batch.sightings],
        )
    if batch.carriers:
        # The first sighting per feed and story stays: it is when the feed had it.
        conn.executemany(
            """INSERT OR IGNORE INTO story_feeds (story_id, feed_id, feed_name, seen_at, baseline)
               VALUES (?, ?, ?, ?, ?)""",
            [
                (story_id(r.story), r.feed_id, r.feed_name, stamp, int(r.baseline))
                for r in batch.carriers
            ],
        )
    write_poll(conn, feed.id, outcome, now, True)
    return ids
