"""What every part of the PostgreSQL backend shares: the connection pool, transactions, rows
read by column name into the core's values, and names compared the way SQLite's NOCASE does.

Unlike SQLite's one connection under one lock, statements run on a pool of connections: each
method is one statement or one transaction, and the database keeps them apart. Times are
timestamptz and come back as aware UTC datetimes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bot.core.models import Delivery, FeedState, StoredStory
from bot.core.store import PollOutcome
from storage import rows

_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """A name as the database's ascii_lower() folds it (SQLite's NOCASE: ASCII letters only)."""
    return name.translate(_FOLD)


# --- rows by column name: storage.rows, with this backend's timestamps ----------------------------


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def story_of(row: asyncpg.Record, prefix: str = "") -> StoredStory:
    return rows.story_of(row, utc, prefix)


def delivery_of(row: asyncpg.Record) -> Delivery:
    return rows.delivery_of(row, utc)


def feed_of(row: asyncpg.Record) -> FeedState:
    return rows.feed_of(row, utc)


class PostgresBase:
    """The pool and its plumbing; the tables' methods are in the mixins beside it."""

    def __init__(self, pool: asyncpg.Pool, where: str) -> None:
        self._pool = pool
        self._writer: asyncpg.Connection[Any] | None = None  # see WRITER_LOCK
        # The server and database, never the password (see storage.postgres.redact).
        self.where = where
        # Bumped by every change to watchlists or subscriptions this process makes: the pipeline
        # rebuilds its matcher when it moves. (Changes by other processes: issue 16, NOTIFY.)
        self.queries_version = 0

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    async def _scalar(self, sql: str, *params: Any) -> Any:
        return await self._pool.fetchval(sql, *params)

    async def _read(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        return list(await self._pool.fetch(sql, *params))

    async def _write(self, sql: str, *params: Any) -> int:
        """The number of rows the statement touched."""
        return rowcount(await self._pool.execute(sql, *params))

    async def _record_poll(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        feed_id: int,
        outcome: PollOutcome,
        now: datetime,
        *,
        baseline_done: bool | None,
    ) -> None:
        """The feed's state after a poll (a poll that wrote stories also ends its baseline)."""
        if outcome.ok:
            await conn.execute(
                """UPDATE feeds SET etag = $1, last_modified = $2, body_hash = $3,
                     last_poll_at = $4, last_success_at = $4, failures = 0, retry_at = NULL,
                     baseline_done = coalesce($5, baseline_done)
                   WHERE id = $6""",
                outcome.etag,
                outcome.last_modified,
                outcome.body_hash,
                now,
                baseline_done,
                feed_id,
            )
        else:
            await conn.execute(
                """UPDATE feeds SET last_poll_at = $1, last_error = $2, last_error_at = $1,
                     failures = $3, retry_at = $4 WHERE id = $5""",
                now,
                outcome.error,
                outcome.failures,
                outcome.retry_at,
                feed_id,
            )


def rowcount(status: str) -> int:
    """Rows touched, from a command status such as "UPDATE 3" or "INSERT 0 1"."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0
