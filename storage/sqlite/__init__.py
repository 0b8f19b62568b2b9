"""SQLite storage on aiosqlite: WAL, a busy timeout, plain-SQL migrations (migrations/ beside
this file, numbered, tracked with PRAGMA user_version).

The tables' methods live in one module per part (feeds, ingest, stories, outbox, queries), each
a mixin over the shared connection in base.py; this module opens, checks and migrates the file,
and puts the parts together as SqliteStorage, which implements bot.core.store.Storage."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import aiosqlite

from bot.core.store import WINDOW_HITS_PER_KEY
from storage.errors import DatabaseUnavailable, DuplicateName, StorageError
from storage.migrations import LATEST_VERSION, load_migrations, script_for
from storage.sqlite.feeds import FeedTables
from storage.sqlite.files import (
    APPLICATION_ID,
    BUSY_TIMEOUT_MS,
    OUR_TABLES,
    describe_failure,
    ensure_private_folder,
    prepare_file,
    warn_if_shared,
)
from storage.sqlite.ingest import IngestTables
from storage.sqlite.outbox import OutboxTables
from storage.sqlite.queries import QueryTables
from storage.sqlite.stories import StoryTables
from storage.sqlite.websub import WebSubTables

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_MS",
    "LATEST_VERSION",
    "WINDOW_HITS_PER_KEY",
    "DatabaseUnavailable",
    "DuplicateName",
    "SqliteStorage",
    "StorageError",
    "describe_failure",
    "ensure_private_folder",
    "load_migrations",
    "script_for",
]

log = logging.getLogger(__name__)


class SqliteStorage(IngestTables, OutboxTables, FeedTables, StoryTables, QueryTables, WebSubTables):
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
                prepare_file(Path(target))
            db = await aiosqlite.connect(target, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(describe_failure(target, exc) or str(exc)) from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            storage = cls(db, target)
            # Read-only until we know the file is ours: even the journal mode is a write.
            await storage._check_ours()
            if target != ":memory:":
                warn_if_shared(Path(target))
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
            # Each poll's write is a savepoint of its ingest session, and SQLite keeps the first
            # image of every page a savepoint changes, in a temporary file by default: a first
            # poll of 1,000 feeds spent about 2 s in writing those (pwrite). In memory instead:
            # a savepoint's pages, a few MB at most.
            await db.execute("PRAGMA temp_store = MEMORY")
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
        if app_id == 0 and ((version == 0 and not names) or (version > 0 and names >= OUR_TABLES)):
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
        # load_migrations and LATEST_VERSION are looked up in this module when called, so a
        # test can hand the runner a migration of its own.
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
            found: int = await self._scalar("PRAGMA user_version")
            return found

    async def schema_version(self) -> int:
        async with self._lock:
            found: int = await self._scalar("PRAGMA user_version")
            return found
