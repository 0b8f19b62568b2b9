"""SQLite storage on aiosqlite: WAL, a busy timeout, plain-SQL migrations.

One connection and one lock: every statement and every transaction runs under the lock, so a
delivery being marked sent can never slip into the middle of a poll's transaction.

The file holds every reporter's subscriptions and the audit log: a folder we create is 0700, the
database 0600 (SQLite gives its -wal, -shm and -journal files the database's own mode). A file
that is not a SQLite database, or is some other application's, is refused before anything is
written to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiosqlite

from bot.core.identity import KeyKind
from bot.core.models import (
    Delivery,
    DeliveryStatus,
    FeedSpec,
    FeedState,
    Origin,
    StoredStory,
    Story,
    Subscription,
    Watchlist,
)
from bot.core.pipeline import IngestPlan
from bot.core.ports import KeyHit, PollOutcome
from storage.migrations import LATEST_VERSION, load_migrations, script_for

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
_SQL_VARIABLES = 900  # stay under SQLite's host-parameter limit on old builds
# PRAGMA application_id ("NBOT"): marks a file as ours, so a database of another application
# that happens to sit at the configured path is recognised and left alone.
APPLICATION_ID = 0x4E424F54
# Tables every schema version has: how a database made before the mark existed is recognised.
_OUR_TABLES = frozenset(
    {"feeds", "stories", "story_keys", "watchlists", "subscriptions", "deliveries"}
)
_SQLITE_HEADER = b"SQLite format 3\x00"


class StorageError(Exception):
    pass


class DuplicateName(StorageError):
    pass


class DatabaseUnavailable(StorageError):
    """The database file cannot be used at all: locked by another process, not a SQLite file,
    damaged, or another application's. The message is one line that names the file."""


def describe_failure(path: str, exc: BaseException) -> str | None:
    """One line for an error that is about the database file rather than a bug in newsbot
    (another process holds the lock, the file is not SQLite or is damaged); None otherwise."""
    if isinstance(exc, DatabaseUnavailable):
        return str(exc)
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF  # extended codes keep the primary low byte
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        reason = (
            f"it is locked by another process (SQLite: {exc}, after waiting "
            f"{BUSY_TIMEOUT_MS / 1000:g} s); stop whatever holds it (a backup, a sqlite3 "
            "shell, another program) and start again"
        )
    elif primary == sqlite3.SQLITE_NOTADB:
        reason = "it is not a SQLite database; refusing to touch it"
    elif primary == sqlite3.SQLITE_CORRUPT:
        reason = f"it is damaged or truncated ({exc}); restore it from a backup or move it aside"
    elif primary in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY):
        reason = f"{exc}; check that the folder exists and this user may write to it"
    elif primary in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
        reason = f"{exc}"
    else:
        return None
    return f"cannot open the database {path}: {reason}"


def ensure_private_folder(folder: Path) -> None:
    """Create the data folder 0700 if it is missing. A folder that exists was chosen by the
    operator, and its mode is theirs: the files we put in it are 0600 anyway."""
    if not folder.exists():
        # mode applies to the last component only; parents we create follow the umask.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def _prepare_file(path: Path) -> None:
    """Before SQLite sees the path: create a missing database 0600, and refuse an existing
    file that is not SQLite (so SQLite never opens it, let alone writes to it)."""
    ensure_private_folder(path.parent)
    try:
        # O_EXCL: if another process creates it first, it is treated as existing below.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.fchmod(fd, 0o600)  # the umask could have taken bits away, never add them: be exact
        os.close(fd)
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise DatabaseUnavailable(
            f"cannot open the database {path}: {exc.strerror or exc}"
        ) from exc
    # An empty file is what SQLite itself calls an empty database.
    if header and header != _SQLITE_HEADER:
        raise DatabaseUnavailable(
            f"cannot open the database {path}: it is not a SQLite database; refusing to touch it"
        )


def _warn_if_shared(path: Path) -> None:
    """A database an older newsbot created (or someone chmod-ed) keeps its mode: changing the
    permissions of an existing file is the operator's call, so we say it instead."""
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode
        if stat.S_ISREG(mode) and mode & 0o077:
            log.warning(
                "the database %s can be read by other users (mode %s): it holds every "
                "subscription and the audit log; run chmod 600 on it and its -wal and -shm "
                "files",
                path,
                stat.filemode(mode),
            )


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


# Newest stories returned per windowed identity key (see find_keys), and keys per compound
# SELECT (SQLite allows 500 terms; 3 parameters per term stay under its 999-variable floor).
WINDOW_HITS_PER_KEY = 8
_KEYS_PER_COMPOUND = 200
_COMPOUND_SIZES = (8, 25, 50, 100, _KEYS_PER_COMPOUND)


@lru_cache(maxsize=len(_COMPOUND_SIZES))
def _compound(size: int) -> str:
    term = (
        "SELECT * FROM (SELECT key, kind, story_id, seen_at FROM story_keys"
        " WHERE key = ? AND seen_at >= ? ORDER BY story_id DESC LIMIT ?)"
    )
    return " UNION ALL ".join([term] * size)


def _chunks(items: Sequence[Any], size: int = _SQL_VARIABLES) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_STORY_COLUMNS = (
    "s.id, s.feed_id, s.feed_name, s.guid, s.url, s.title, s.summary, s.content, "
    "s.published_at, s.first_seen_at, s.author, s.categories, s.image, s.revision, s.alertable"
)
_DELIVERY_COLUMNS = (
    "d.id, d.story_id, d.target, d.watchlists, d.subscriber, d.matched, d.status, d.attempts, "
    "d.message_id, d.update_pending, d.update_count, d.created_at, d.digest_group"
)
_FEED_COLUMNS = (
    "id, name, url, interval_s, origin, etag, last_modified, body_hash, baseline_done, "
    "last_poll_at, last_success_at, last_error, last_error_at, failures, retry_at, created_by"
)


def _story(row: Sequence[Any]) -> StoredStory:
    return StoredStory(
        id=row[0],
        feed_id=row[1],
        story=Story(
            feed=row[2],
            guid=row[3],
            link=row[4],
            title=row[5],
            summary=row[6],
            content=row[7],
            published=_dt(row[8]),
            author=row[10],
            categories=tuple(json.loads(row[11])),
            image=row[12],
        ),
        first_seen=_dt(row[9]) or datetime.fromtimestamp(0, UTC),
        revision=row[13],
        alertable=bool(row[14]),
    )


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        story_id=row[1],
        target=row[2],
        watchlists=tuple(json.loads(row[3])),
        subscriber=row[4],
        matched=tuple(json.loads(row[5])),
        status=DeliveryStatus(row[6]),
        attempts=row[7],
        message_id=row[8],
        update_pending=bool(row[9]),
        update_count=row[10],
        created_at=_dt(row[11]),
        digest_group=row[12],
    )


def _feed(row: Sequence[Any]) -> FeedState:
    return FeedState(
        id=row[0],
        name=row[1],
        url=row[2],
        interval=timedelta(seconds=row[3]),
        origin=Origin(row[4]),
        etag=row[5],
        last_modified=row[6],
        body_hash=row[7],
        baseline_done=bool(row[8]),
        last_poll_at=_dt(row[9]),
        last_success_at=_dt(row[10]),
        last_error=row[11],
        last_error_at=_dt(row[12]),
        failures=row[13],
        retry_at=_dt(row[14]),
        created_by=row[15],
    )


def _watchlist(row: Sequence[Any]) -> Watchlist:
    return Watchlist(
        id=row[0],
        name=row[1],
        query=row[2],
        channels=tuple(json.loads(row[3])),
        origin=Origin(row[4]),
        created_by=row[5],
    )


class SqliteStorage:
    def __init__(self, db: aiosqlite.Connection, path: str) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()
        # Bumped by every change to watchlists or subscriptions: the pipeline rebuilds its
        # matcher when it moves, so an edit in chat applies at the next poll without a restart.
        self.queries_version = 0

    # For the composition root: the data folder (the instance lock lives there too) and the
    # one-line reasons for a database that cannot be used.
    ensure_private_folder = staticmethod(ensure_private_folder)
    describe_failure = staticmethod(describe_failure)

    @classmethod
    async def open(cls, path: str | Path) -> SqliteStorage:
        """Open (creating if missing) and migrate. Raises DatabaseUnavailable, with a one-line
        reason, when the file is locked by another process, is not SQLite, is damaged, or
        belongs to another application; such a file is left exactly as it was."""
        target = str(path)
        try:
            if target != ":memory:":
                _prepare_file(Path(target))
            db = await aiosqlite.connect(target, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(describe_failure(target, exc) or str(exc)) from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            storage = cls(db, target)
            # Read-only until we know the file is ours: even the journal mode is a write.
            await storage._check_ours()
            if target != ":memory:":
                _warn_if_shared(Path(target))
            await db.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash or power
            # loss can lose the last transactions (sqlite.org/pragma.html#pragma_synchronous).
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            # A poll writes its stories' identity keys: 64-bit hashes, so each lands on its own
            # page of the key index. A bigger page cache keeps that index in memory, and rarer
            # checkpoints write a page once for many polls (each used to cost about 2 ms).
            await db.execute("PRAGMA cache_size = -65536")
            await db.execute("PRAGMA wal_autocheckpoint = 8000")
            await db.execute("PRAGMA journal_size_limit = 67108864")
            await storage.migrate()
            # Take the write lock once: a process holding it (a backup, a sqlite3 shell) is
            # found now, as a clear refusal, not by the first poll.
            await db.execute("BEGIN IMMEDIATE")
            await db.execute("ROLLBACK")
        except BaseException as exc:
            await db.close()
            reason = describe_failure(target, exc)
            if reason is not None and not isinstance(exc, DatabaseUnavailable):
                raise DatabaseUnavailable(reason) from exc
            raise
        return storage

    async def _check_ours(self) -> None:
        """Refuse a database another application made: an empty file, a database this code
        marked with APPLICATION_ID, or one with our tables (made before the mark) is ours."""
        async with self._lock:
            app_id = await self._scalar("PRAGMA application_id")
            version = await self._scalar("PRAGMA user_version")
            names = {
                name
                for (name,) in await self._all(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
                )
            }
        if app_id == APPLICATION_ID:
            return
        if app_id == 0 and ((version == 0 and not names) or (version > 0 and names >= _OUR_TABLES)):
            return
        shown = sorted(names)
        has = f"it has tables {', '.join(shown[:8])}{', ...' if len(shown) > 8 else ''}"
        if not shown:
            has = "it has no tables"
        if app_id:
            has += f" and application id {app_id:#x}"
        raise DatabaseUnavailable(
            f"cannot open the database {self.path}: it is not a newsbot database ({has}); "
            "refusing to touch it"
        )

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def migrate(self) -> int:
        async with self._lock:
            version = await self._scalar("PRAGMA user_version")
            if version > LATEST_VERSION:
                raise DatabaseUnavailable(
                    f"cannot open the database {self.path}: it has schema version {version}, "
                    f"newer than this newsbot understands ({LATEST_VERSION}); upgrade newsbot"
                )
            for migration in load_migrations():
                if migration.version > version:
                    log.info(
                        "migrating database to schema %d (%s)", migration.version, migration.name
                    )
                    await self._db.executescript(script_for(migration))
            if await self._scalar("PRAGMA application_id") != APPLICATION_ID:
                await self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            return await self._scalar("PRAGMA user_version")

    async def schema_version(self) -> int:
        async with self._lock:
            return await self._scalar("PRAGMA user_version")

    # --- plumbing --------------------------------------------------------------------------

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._db.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return None if row is None else row[0]

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException as exc:
                try:
                    await self._db.execute("ROLLBACK")
                except sqlite3.Error as rollback_error:
                    # After some errors (SQLITE_FULL, IOERR, NOMEM) SQLite has already rolled
                    # the transaction back, and ROLLBACK fails with "no transaction is
                    # active": the first error is the cause, and must be the one raised.
                    exc.add_note(f"(the rollback after it: {rollback_error})")
                raise
            await self._db.execute("COMMIT")

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._lock:
            cursor = await self._db.execute(sql, params)
            return cursor.rowcount

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._lock:
            return await self._all(sql, params)

    # --- feeds -----------------------------------------------------------------------------

    async def sync_config_feeds(self, specs: Sequence[FeedSpec], now: datetime) -> None:
        """Make the database's config-owned feeds exactly those of the file. Feeds made in chat
        are left alone, unless the file now claims the name (the file wins, and we say so)."""
        async with self._transaction() as db:
            names = [s.name for s in specs]
            rows = await self._all("SELECT name, origin FROM feeds WHERE active = 1")
            for name, origin in rows:
                if origin == Origin.CHAT and name.casefold() in {n.casefold() for n in names}:
                    log.warning("feed %r was added in chat; the config file now manages it", name)
            for spec in specs:
                await db.execute(
                    """INSERT INTO feeds (name, url, interval_s, origin, created_at, created_by)
                       VALUES (?, ?, ?, 'config', ?, 'config file')
                       ON CONFLICT (name) DO UPDATE SET
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
                    (spec.name, spec.url, int(spec.interval.total_seconds()), now.timestamp()),
                )
            placeholders = ",".join("?" * len(names)) or "''"
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
                    """INSERT INTO feeds (name, url, interval_s, origin, created_at, created_by)
                       VALUES (?, ?, ?, ?, ?, ?)""",
                    (
                        spec.name,
                        spec.url,
                        int(spec.interval.total_seconds()),
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
            f"SELECT {_FEED_COLUMNS} FROM feeds WHERE active = 1 ORDER BY name"  # noqa: S608
        )
        return [_feed(r) for r in rows]

    async def get_feed(self, name: str) -> FeedState | None:
        rows = await self._read(
            f"SELECT {_FEED_COLUMNS} FROM feeds WHERE name = ? AND active = 1",  # noqa: S608
            (name,),
        )
        return _feed(rows[0]) if rows else None

    async def get_feed_by_id(self, feed_id: int) -> FeedState | None:
        rows = await self._read(
            f"SELECT {_FEED_COLUMNS} FROM feeds WHERE id = ? AND active = 1",  # noqa: S608
            (feed_id,),
        )
        return _feed(rows[0]) if rows else None

    async def find_feed_by_url(self, url: str) -> FeedState | None:
        rows = await self._read(
            f"SELECT {_FEED_COLUMNS} FROM feeds WHERE url = ? AND active = 1",  # noqa: S608
            (url,),
        )
        return _feed(rows[0]) if rows else None

    async def record_poll(self, feed: FeedState, outcome: PollOutcome, now: datetime) -> None:
        async with self._lock:
            await self._record_poll(self._db, feed.id, outcome, now, baseline_done=None)

    async def _record_poll(
        self,
        db: aiosqlite.Connection,
        feed_id: int,
        outcome: PollOutcome,
        now: datetime,
        *,
        baseline_done: bool | None,
    ) -> None:
        if outcome.ok:
            await db.execute(
                """UPDATE feeds SET etag = ?, last_modified = ?, body_hash = ?, last_poll_at = ?,
                     last_success_at = ?, failures = 0, retry_at = NULL,
                     baseline_done = coalesce(?, baseline_done)
                   WHERE id = ?""",
                (
                    outcome.etag,
                    outcome.last_modified,
                    outcome.body_hash,
                    now.timestamp(),
                    now.timestamp(),
                    baseline_done,
                    feed_id,
                ),
            )
        else:
            await db.execute(
                """UPDATE feeds SET last_poll_at = ?, last_error = ?, last_error_at = ?,
                     failures = ?, retry_at = ? WHERE id = ?""",
                (
                    now.timestamp(),
                    outcome.error,
                    now.timestamp(),
                    outcome.failures,
                    _ts(outcome.retry_at),
                    feed_id,
                ),
            )

    async def stories_per_feed(self, since: datetime) -> dict[int, int]:
        rows = await self._read(
            "SELECT feed_id, count(*) FROM stories WHERE first_seen_at >= ? GROUP BY feed_id",
            (since.timestamp(),),
        )
        return {feed_id: count for feed_id, count in rows if feed_id is not None}

    # --- stories and identity --------------------------------------------------------------

    async def find_keys(
        self, keys: Sequence[int], *, since: datetime | None = None
    ) -> list[KeyHit]:
        """The stories holding these keys. With `since` (the near-duplicate window): only keys
        seen since then, and per key only the WINDOW_HITS_PER_KEY newest stories. On formulaic
        feeds one MinHash band is shared by thousands of stored bulletins; a key that common
        says little, and reading every holder made each poll's work grow with the database."""
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
                for chunk in _chunks(unique):
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT key, kind, story_id, seen_at FROM story_keys WHERE key IN ({marks})"  # noqa: S608
                    hits += hits_of(await self._all(sql, list(chunk)))
                return hits
            # One bounded index range per key (newest story ids first), as a compound SELECT:
            # SQLite has no LATERAL join, and a window function would still read every holder.
            stamp = since.timestamp()
            for chunk in _chunks(unique, _KEYS_PER_COMPOUND):
                # A few statement sizes only, padded with the chunk's last key (its repeated
                # rows are dropped): each is compiled once and then cached by the driver, where
                # a statement of every length was compiled anew (about 2 ms for 200 terms).
                size = next(n for n in _COMPOUND_SIZES if n >= len(chunk))
                padded = [*chunk, *[chunk[-1]] * (size - len(chunk))]
                params: list[Any] = []
                for key in padded:
                    params += (key, stamp, WINDOW_HITS_PER_KEY)
                rows = await self._all(_compound(size), params)
                hits += hits_of(dict.fromkeys(map(tuple, rows)))
        return hits

    async def load_stories(self, ids: Sequence[int]) -> dict[int, StoredStory]:
        found: dict[int, StoredStory] = {}
        if not ids:
            return found
        async with self._lock:
            for chunk in _chunks(list(ids)):
                marks = ",".join("?" * len(chunk))
                rows = await self._all(
                    f"SELECT {_STORY_COLUMNS} FROM stories s WHERE s.id IN ({marks})",  # noqa: S608
                    chunk,
                )
                for row in rows:
                    found[row[0]] = _story(row)
        return found

    async def delivery_targets(self, story_ids: Sequence[int]) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {}
        async with self._lock:
            for chunk in _chunks(list(story_ids)):
                marks = ",".join("?" * len(chunk))
                rows = await self._all(
                    f"SELECT story_id, target FROM deliveries WHERE story_id IN ({marks})",  # noqa: S608
                    chunk,
                )
                for story_id, target in rows:
                    found.setdefault(story_id, set()).add(target)
        return found

    async def apply_ingest(
        self, feed: FeedState, plan: IngestPlan, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        try:
            return await self._apply_ingest(feed, plan, outcome, now)
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
        self, feed: FeedState, plan: IngestPlan, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        stamp = now.timestamp()
        async with self._transaction() as db:
            ids: dict[int, int] = {}
            if plan.new_stories:
                # One writer, inside BEGIN IMMEDIATE: ids can be handed out up front, which lets
                # stories, keys and deliveries go in as three batched statements.
                first = await self._scalar(
                    """SELECT max(coalesce((SELECT seq FROM sqlite_sequence
                                            WHERE name = 'stories'), 0),
                                   coalesce((SELECT max(id) FROM stories), 0)) + 1"""
                )
                ids = {ns.ref: first + i for i, ns in enumerate(plan.new_stories)}
                await db.executemany(
                    """INSERT INTO stories (id, feed_id, feed_name, guid, url, title, summary,
                         content, published_at, first_seen_at, author, categories, image,
                         alertable)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [
                        (
                            ids[ns.ref],
                            feed.id,
                            ns.story.feed,
                            ns.story.guid,
                            ns.story.link,
                            ns.story.title,
                            ns.story.summary,
                            ns.story.content,
                            _ts(ns.story.published),
                            stamp,
                            ns.story.author,
                            json.dumps(ns.story.categories, ensure_ascii=False),
                            ns.story.image,
                            int(ns.alertable),
                        )
                        for ns in plan.new_stories
                    ],
                )

            def real(ref: int) -> int:
                return ids[ref] if ref < 0 else ref

            if plan.revisions:
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
                        for r in plan.revisions
                    ],
                )
                notify = [r.story_id for r in plan.revisions if r.notify]
                await db.executemany(
                    """UPDATE deliveries SET update_pending = 1, next_attempt_at = ?
                       WHERE story_id = ? AND status = 'sent' AND digest = 0
                         AND update_count < ?""",
                    [(stamp, story_id, plan.max_updates) for story_id in notify],
                )
            if plan.keys:
                await db.executemany(
                    "INSERT OR IGNORE INTO story_keys (key, story_id, kind, seen_at) "
                    "VALUES (?, ?, ?, ?)",
                    [(k.key.value, real(k.story_ref), int(k.key.kind), stamp) for k in plan.keys],
                )
            if plan.deliveries:
                await db.executemany(
                    """INSERT INTO deliveries (story_id, target, watchlists, subscriber, matched,
                         next_attempt_at, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (story_id, target) DO UPDATE SET
                         matched = excluded.matched, watchlists = excluded.watchlists""",
                    [
                        (
                            real(d.story_ref),
                            d.route.target,
                            json.dumps(d.route.watchlists, ensure_ascii=False),
                            d.route.subscriber,
                            json.dumps(d.route.matched, ensure_ascii=False),
                            stamp,
                            stamp,
                        )
                        for d in plan.deliveries
                    ],
                )
            await self._record_poll(db, feed.id, outcome, now, baseline_done=True)
        return ids

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
        sql = f"SELECT {_STORY_COLUMNS} FROM stories s WHERE s.first_seen_at >= ?"  # noqa: S608
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
        return [_story(r) for r in await self._read(sql, params)]

    async def count_stories(self) -> int:
        async with self._lock:
            return await self._scalar("SELECT count(*) FROM stories")

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

    # --- watchlists and subscriptions ------------------------------------------------------

    def _queries_changed(self) -> None:
        self.queries_version += 1

    async def sync_config_watchlists(
        self, items: Sequence[tuple[str, str, Sequence[str]]], now: datetime
    ) -> None:
        async with self._transaction() as db:
            names = [name for name, _, _ in items]
            for name, query, channels in items:
                await db.execute(
                    """INSERT INTO watchlists (name, query, channels, origin, created_by,
                         created_at, updated_at)
                       VALUES (?, ?, ?, 'config', 'config file', ?, ?)
                       ON CONFLICT (name) DO UPDATE SET query = excluded.query,
                         channels = excluded.channels, origin = 'config',
                         updated_at = excluded.updated_at""",
                    (name, query, json.dumps(list(channels)), now.timestamp(), now.timestamp()),
                )
            marks = ",".join("?" * len(names)) or "''"
            await db.execute(
                f"DELETE FROM watchlists WHERE origin = 'config' AND name NOT IN ({marks})",  # noqa: S608
                names,
            )
        self._queries_changed()

    async def list_watchlists(self) -> list[Watchlist]:
        rows = await self._read(
            "SELECT id, name, query, channels, origin, created_by FROM watchlists ORDER BY name"
        )
        return [_watchlist(r) for r in rows]

    async def get_watchlist(self, name: str) -> Watchlist | None:
        rows = await self._read(
            "SELECT id, name, query, channels, origin, created_by FROM watchlists WHERE name = ?",
            (name,),
        )
        return _watchlist(rows[0]) if rows else None

    async def add_watchlist(
        self, name: str, query: str, channels: Sequence[str], created_by: str, now: datetime
    ) -> Watchlist:
        try:
            await self._write(
                """INSERT INTO watchlists (name, query, channels, origin, created_by, created_at,
                     updated_at) VALUES (?, ?, ?, 'chat', ?, ?, ?)""",
                (
                    name,
                    query,
                    json.dumps(list(channels)),
                    created_by,
                    now.timestamp(),
                    now.timestamp(),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateName(f"a watchlist named {name!r} already exists") from exc
        self._queries_changed()
        found = await self.get_watchlist(name)
        assert found is not None
        return found

    async def update_watchlist(
        self,
        name: str,
        *,
        query: str | None = None,
        channels: Sequence[str] | None = None,
        now: datetime,
    ) -> bool:
        changed = await self._write(
            """UPDATE watchlists SET query = coalesce(?, query),
                 channels = coalesce(?, channels), updated_at = ?
               WHERE name = ? AND origin = 'chat'""",
            (
                query,
                None if channels is None else json.dumps(list(channels)),
                now.timestamp(),
                name,
            ),
        )
        self._queries_changed()
        return changed > 0

    async def remove_watchlist(self, name: str) -> bool:
        removed = await self._write(
            "DELETE FROM watchlists WHERE name = ? AND origin = 'chat'", (name,)
        )
        self._queries_changed()
        return removed > 0

    async def add_subscription(
        self, subscriber: str, query: str, now: datetime, *, limit: int | None = None
    ) -> bool:
        """False when the subscriber already has this query, or already has `limit`
        subscriptions. The count and the insert are one statement, so concurrent subscribes
        cannot all see room for one more and overshoot the limit."""
        added = await self._write(
            """INSERT OR IGNORE INTO subscriptions (subscriber, query, created_at)
               SELECT ?, ?, ?
               WHERE ? IS NULL OR (SELECT count(*) FROM subscriptions WHERE subscriber = ?) < ?""",
            (subscriber, query, now.timestamp(), limit, subscriber, limit),
        )
        self._queries_changed()
        return added > 0

    async def remove_subscription(self, subscriber: str, query: str) -> bool:
        removed = await self._write(
            "DELETE FROM subscriptions WHERE subscriber = ? AND query = ?", (subscriber, query)
        )
        self._queries_changed()
        return removed > 0

    async def list_subscriptions(self, subscriber: str | None = None) -> list[Subscription]:
        if subscriber is None:
            rows = await self._read("SELECT id, subscriber, query FROM subscriptions ORDER BY id")
        else:
            rows = await self._read(
                "SELECT id, subscriber, query FROM subscriptions WHERE subscriber = ? ORDER BY id",
                (subscriber,),
            )
        return [Subscription(*r) for r in rows]

    # --- deliveries ------------------------------------------------------------------------

    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, StoredStory]]:
        stamp = now.timestamp()
        rows = await self._read(
            f"""SELECT {_DELIVERY_COLUMNS}, {_STORY_COLUMNS} FROM (
                    SELECT id FROM deliveries p WHERE status = 'pending' AND next_attempt_at <= ?
                      -- A destination reads its cards in order: while an earlier card waits
                      -- out a retry, the later ones wait behind it.
                      AND NOT EXISTS (
                          SELECT 1 FROM deliveries e INDEXED BY deliveries_pending
                          WHERE e.status = 'pending' AND e.target = p.target AND e.id < p.id
                            AND e.next_attempt_at > ?)
                    UNION ALL
                    SELECT id FROM deliveries WHERE update_pending = 1 AND status = 'sent'
                      AND next_attempt_at <= ?
                ) due
                JOIN deliveries d ON d.id = due.id
                JOIN stories s ON s.id = d.story_id
                ORDER BY d.id LIMIT ?""",  # noqa: S608 - column lists are constants
            (stamp, stamp, stamp, limit),
        )
        width = len(_DELIVERY_COLUMNS.split(","))
        return [(_delivery(r[:width]), _story(r[width:])) for r in rows]

    async def mark_sent(
        self,
        delivery_id: int,
        message_id: str,
        now: datetime,
        *,
        digest: bool = False,
        revision: int | None = None,
    ) -> None:
        """`revision`: the story revision the card showed. If the story was revised meanwhile,
        the delivery is due for an update at once."""
        await self._write(
            """UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, error = NULL,
                 digest = ?, next_attempt_at = ?,
                 rendered_revision = coalesce(?, (SELECT revision FROM stories s
                                                  WHERE s.id = deliveries.story_id)),
                 update_pending = ? = 0 AND coalesce(?, 1 << 62) <
                                  (SELECT revision FROM stories s WHERE s.id = deliveries.story_id)
               WHERE id = ?""",
            (
                message_id,
                now.timestamp(),
                int(digest),
                now.timestamp(),
                revision,
                int(digest),
                revision,
                delivery_id,
            ),
        )

    async def mark_update_done(
        self, delivery_id: int, now: datetime, *, revision: int | None = None
    ) -> None:
        await self._write(
            """UPDATE deliveries SET update_count = update_count + 1, attempts = 0, error = NULL,
                 rendered_revision = coalesce(?, (SELECT revision FROM stories s
                                                  WHERE s.id = deliveries.story_id)),
                 update_pending = coalesce(?, 1 << 62) <
                                  (SELECT revision FROM stories s WHERE s.id = deliveries.story_id)
               WHERE id = ?""",
            (revision, revision, delivery_id),
        )

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None:
        await self._write(
            "UPDATE deliveries SET status = 'failed', error = ?, sent_at = NULL WHERE id = ?",
            (error[:1000], delivery_id),
        )

    async def reschedule(
        self, delivery_id: int, error: str, next_attempt: datetime, *, update: bool
    ) -> None:
        await self._write(
            """UPDATE deliveries SET attempts = attempts + 1, error = ?, next_attempt_at = ?
               WHERE id = ?""",
            (error[:1000], next_attempt.timestamp(), delivery_id),
        )

    async def recent_sent_count(self, target: str, since: datetime) -> int:
        async with self._lock:
            return await self._scalar(
                "SELECT count(*) FROM deliveries WHERE target = ? AND sent_at >= ?",
                (target, since.timestamp()),
            )

    async def assign_digest(self, delivery_ids: Sequence[int], group: str) -> None:
        async with self._transaction() as db:
            await db.executemany(
                "UPDATE deliveries SET digest_group = ? WHERE id = ? AND status = 'pending'",
                [(group, delivery_id) for delivery_id in delivery_ids],
            )

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self._read("SELECT status, count(*) FROM deliveries GROUP BY status")
        counts = {s.value: 0 for s in DeliveryStatus}
        counts.update(dict(rows))
        return counts

    async def deliveries_for_story(self, story_id: int) -> list[Delivery]:
        rows = await self._read(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE d.story_id = ? ORDER BY d.id",  # noqa: S608
            (story_id,),
        )
        return [_delivery(r) for r in rows]

    async def recent_for_subscriber(self, subscriber: str, limit: int) -> list[StoredStory]:
        rows = await self._read(
            f"""SELECT {_STORY_COLUMNS} FROM deliveries d JOIN stories s ON s.id = d.story_id
                WHERE d.subscriber = ? ORDER BY d.id DESC LIMIT ?""",  # noqa: S608
            (subscriber, limit),
        )
        return [_story(r) for r in rows]

    # --- audit -----------------------------------------------------------------------------

    async def record_audit(
        self, actor: str, action: str, detail: dict[str, Any], now: datetime
    ) -> None:
        await self._write(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            (now.timestamp(), actor, action, json.dumps(detail, ensure_ascii=False)),
        )

    async def audit_entries(self, limit: int = 100) -> list[tuple[datetime, str, str, dict]]:
        rows = await self._read(
            "SELECT at, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [(_dt(at), actor, action, json.loads(detail)) for at, actor, action, detail in rows]  # type: ignore[misc]
