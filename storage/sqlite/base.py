"""What every part of the SQLite backend shares: the connection and its lock, transactions,
and rows read by column name into the core's values.

One connection and one lock: every statement and every transaction runs under the lock, so a
delivery being marked sent can never slip into the middle of a poll's transaction.

Times are stored as Unix seconds (UTC) and come back as aware UTC datetimes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiosqlite

from bot.core.models import Delivery, FeedState, StoredStory
from bot.core.store import PollOutcome
from storage import rows

_SQL_VARIABLES = 900  # stay under SQLite's host-parameter limit on old builds

T = TypeVar("T")


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def chunks(items: Sequence[T], size: int = _SQL_VARIABLES) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(count: int) -> str:
    """`?, ?, ?` for an IN list: placeholders only, never values, go into the SQL text."""
    return ",".join("?" * count)


# --- rows by column name: storage.rows, with this backend's timestamps ----------------------------


def story_of(row: sqlite3.Row, prefix: str = "") -> StoredStory:
    return rows.story_of(row, dt, prefix)


def delivery_of(row: sqlite3.Row) -> Delivery:
    return rows.delivery_of(row, dt)


def feed_of(row: sqlite3.Row) -> FeedState:
    return rows.feed_of(row, dt)


class SqliteBase:
    """The connection and its plumbing; the tables' methods are in the mixins beside it."""

    def __init__(self, db: aiosqlite.Connection, path: str) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()
        # Bumped by every change to watchlists or subscriptions: the pipeline rebuilds its
        # matcher when it moves, so an edit in chat applies at the next poll without a restart.
        self.queries_version = 0

    # Callers hold the lock (or the transaction) for these four.

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._db.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return None if row is None else row[0]

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Plain tuples, unpacked right where the SELECT names their columns: for the hot paths
        (a first poll reads millions of key rows, and a sqlite3.Row costs twice a tuple)."""
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows read by column name."""
        async with self._db.execute(sql, params) as cursor:
            cursor.row_factory = sqlite3.Row  # applied as rows are fetched
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

    # These take the lock themselves.

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._lock:
            cursor = await self._db.execute(sql, params)
            return cursor.rowcount

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._lock:
            return await self._rows(sql, params)

    async def _read_tuples(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._lock:
            return await self._all(sql, params)

    async def _record_poll(
        self,
        db: aiosqlite.Connection,
        feed_id: int,
        outcome: PollOutcome,
        now: datetime,
        *,
        baseline_done: bool | None,
    ) -> None:
        """The feed's state after a poll (a poll that wrote stories also ends its baseline)."""
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
                    ts(outcome.retry_at),
                    feed_id,
                ),
            )
