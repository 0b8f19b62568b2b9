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

from bot.core.cluster import LeaseLost
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

    def __init__(self, pool: asyncpg.Pool, where: str, worker: str) -> None:
        self._pool = pool
        # The server and database, never the password (see storage.postgres.redact).
        self.where = where
        # This process among the workers sharing the database (storage.postgres.cluster).
        self.worker = worker
        # Bumped by every change to watchlists or subscriptions, this worker's or (told by
        # NOTIFY) another's: the pipeline rebuilds its matcher when it moves.
        self.queries_version = 0
        # The fencing tokens this worker was given: feed id -> lease, destination -> claim.
        # Writes on a feed or destination held here are refused once the token has moved on.
        self._feed_tokens: dict[int, int] = {}
        self._claims: dict[str, int] = {}

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

    async def _check_feed_lease(self, conn: asyncpg.Connection, feed_id: int) -> None:
        """Inside the caller's transaction, before a poll's writes: raise LeaseLost when this
        worker holds a lease on the feed and it has since been taken over. The row stays locked
        to the commit, so no claim can take the feed between this check and the writes. A feed
        this worker holds no lease on (one process alone, `run --once`) is not checked."""
        token = self._feed_tokens.get(feed_id)
        if token is None:
            return
        found = await conn.fetchval(
            "SELECT lease_token FROM feeds WHERE id = $1 FOR UPDATE", feed_id
        )
        if found != token:
            raise LeaseLost(f"feed {feed_id}: another worker took over its poll")

    async def _check_claims(self, conn: asyncpg.Connection, delivery_ids: list[int]) -> None:
        """Inside the caller's transaction, before a card's state changes: raise LeaseLost
        unless this worker may write for the cards' destinations: it holds the claim it was
        given, or (holding none) no other worker holds a live one. The claims stay share-locked
        to the commit, so none moves meanwhile."""
        found = await conn.fetch(
            """WITH targets AS (
                   SELECT DISTINCT target FROM deliveries WHERE id = ANY($1::bigint[])),
               claims AS (
                   SELECT destination, worker, token, expires_at > now() AS live
                   FROM destination_claims WHERE destination IN (SELECT target FROM targets)
                   ORDER BY destination FOR SHARE)
               SELECT t.target, c.worker, c.token, c.live
               FROM targets t LEFT JOIN claims c ON c.destination = t.target""",
            delivery_ids,
        )
        for claim in found:
            target, held = claim["target"], self._claims.get(claim["target"])
            if held is not None:
                lost = claim["token"] != held
            else:
                lost = bool(claim["live"]) and claim["worker"] != self.worker
            if lost:
                self._claims.pop(target, None)
                raise LeaseLost(f"{target}: another worker now sends this destination's cards")

    async def _record_poll(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        feed_id: int,
        outcome: PollOutcome,
        now: datetime,
        *,
        baseline_done: bool | None,
    ) -> None:
        """The feed's state after a poll (a poll that wrote stories also ends its baseline).
        Fenced: raises LeaseLost, writing nothing, when this worker's lease on the feed was
        taken over (one statement, so this holds outside a transaction too)."""
        token = self._feed_tokens.get(feed_id)
        if outcome.ok:
            schedule = outcome.schedule
            values = (None,) * 6 if schedule is None else rows.schedule_values(schedule)
            # The schedule in the same (fenced) statement; $8 false leaves it as it was.
            status = await conn.execute(
                """UPDATE feeds SET etag = $1, last_modified = $2, body_hash = $3,
                     last_poll_at = $4, last_success_at = $4, failures = 0, retry_at = NULL,
                     baseline_done = coalesce($5, baseline_done),
                     poll_interval_s = CASE WHEN $8 THEN $9::integer ELSE poll_interval_s END,
                     poll_reason = CASE WHEN $8 THEN $10::text ELSE poll_reason END,
                     publish_gap_s = CASE WHEN $8 THEN $11::float8 ELSE publish_gap_s END,
                     feed_ttl_s = CASE WHEN $8 THEN $12::float8 ELSE feed_ttl_s END,
                     skip_hours = CASE WHEN $8 THEN $13::text ELSE skip_hours END,
                     skip_days = CASE WHEN $8 THEN $14::text ELSE skip_days END,
                     last_new_at = CASE WHEN $8 THEN $15::timestamptz ELSE last_new_at END
                   WHERE id = $6 AND ($7::bigint IS NULL OR lease_token = $7)""",
                outcome.etag,
                outcome.last_modified,
                outcome.body_hash,
                now,
                baseline_done,
                feed_id,
                token,
                schedule is not None,
                *values,
                None if schedule is None else schedule.last_new_at,
            )
        else:
            status = await conn.execute(
                """UPDATE feeds SET last_poll_at = $1, last_error = $2, last_error_at = $1,
                     failures = $3, retry_at = $4
                   WHERE id = $5 AND ($6::bigint IS NULL OR lease_token = $6)""",
                now,
                outcome.error,
                outcome.failures,
                outcome.retry_at,
                feed_id,
                token,
            )
        if token is not None and rowcount(status) == 0:
            raise LeaseLost(f"feed {feed_id}: another worker took over its poll")


def rowcount(status: str) -> int:
    """Rows touched, from a command status such as "UPDATE 3" or "INSERT 0 1"."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0
