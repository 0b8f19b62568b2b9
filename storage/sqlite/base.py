"""What every part of the SQLite backend shares: the connection and its lock, transactions,
and rows read by column name into the core's values.

One connection and one lock: every statement and every transaction runs under the lock, so a
delivery being marked sent can never slip into the middle of a poll's transaction.

Times are stored as Unix seconds (UTC) and come back as aware UTC datetimes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import aiosqlite

from bot.core.models import Delivery, FeedState, StoredStory
from bot.core.store import PollOutcome
from storage import rows

SQL_VARIABLES = 900  # stay under SQLite's host-parameter limit on old builds

T = TypeVar("T")


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def chunks(items: Sequence[T], size: int = SQL_VARIABLES) -> Iterable[Sequence[T]]:
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

    # Callers hold the lock (or the transaction) for these.

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """`job(connection)` on the connection's own thread, as one hop. Every awaited statement
        costs the event loop a hand-off to that thread and a wake-up when it is done (three of
        each for a SELECT: execute, fetch, close); a poll's dozen statements as one job cost
        one, which halved the database's share of a first poll of 1,000 feeds."""
        # aiosqlite's own queue (its public methods are built on it), so the job is ordered
        # with every other call on the connection.
        result: T = await self._db._execute(job, self._db._conn)
        return result

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await self._run(partial(fetch_scalar, sql=sql, params=params))

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Plain tuples, unpacked right where the SELECT names their columns: for the hot paths
        (a first poll reads millions of key rows, and a sqlite3.Row costs twice a tuple)."""
        return await self._run(partial(fetch_all, sql=sql, params=params))

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows read by column name."""
        return await self._run(partial(fetch_rows, sql=sql, params=params))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                # Inside the try: a BEGIN whose awaiting task is cancelled still runs on the
                # connection's thread (see ingest_session).
                await self._run(begin)
                yield self._db
            except BaseException as exc:
                await self._run(partial(rollback, cause=exc))
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
        self, feed_id: int, outcome: PollOutcome, now: datetime, *, baseline_done: bool | None
    ) -> None:
        """Callers hold the lock (or are in a transaction): see write_poll."""
        await self._run(
            partial(
                write_poll,
                feed_id=feed_id,
                outcome=outcome,
                now=now,
                baseline_done=baseline_done,
            )
        )


# --- jobs run on the connection's thread (SqliteBase._run) ----------------------------------------


def fetch_scalar(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def fetch_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def fetch_rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
    cursor = conn.execute(sql, params)
    cursor.row_factory = sqlite3.Row  # applied as rows are fetched
    return cursor.fetchall()


def in_transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """`body(conn)` inside BEGIN IMMEDIATE ... COMMIT, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
    except BaseException as exc:
        rollback(conn, exc)
        raise
    conn.execute("COMMIT")
    return result


def begin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def still_in_transaction(conn: sqlite3.Connection) -> None:
    """Raise if SQLite ended the open transaction after an error (SQLITE_FULL, IOERR, NOMEM):
    what it held is gone, and statements would now commit one by one."""
    if not conn.in_transaction:
        raise sqlite3.OperationalError("the transaction was rolled back by an earlier error")


def commit(conn: sqlite3.Connection) -> None:
    still_in_transaction(conn)
    conn.execute("COMMIT")


def in_savepoint(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """`body(conn)` as a savepoint of the open transaction, undone alone if it raises."""
    still_in_transaction(conn)  # rather than write half a poll outside any transaction
    conn.execute("SAVEPOINT poll")
    try:
        result = body(conn)
    except BaseException as exc:
        try:
            conn.execute("ROLLBACK TO poll")
            conn.execute("RELEASE poll")
        except sqlite3.Error as undo_error:
            exc.add_note(f"(undoing it: {undo_error})")
        raise
    conn.execute("RELEASE poll")
    return result


def rollback(conn: sqlite3.Connection, cause: BaseException) -> None:
    if not conn.in_transaction:
        return  # SQLite ended it itself (see commit), or it never began
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as rollback_error:
        # After some errors (SQLITE_FULL, IOERR, NOMEM) SQLite has already rolled the
        # transaction back, and ROLLBACK fails with "no transaction is active": the first
        # error is the cause, and must be the one raised.
        cause.add_note(f"(the rollback after it: {rollback_error})")


def write_poll(
    conn: sqlite3.Connection,
    feed_id: int,
    outcome: PollOutcome,
    now: datetime,
    baseline_done: bool | None,
) -> None:
    """The feed's state after a poll (a poll that wrote stories also ends its baseline)."""
    if outcome.ok:
        conn.execute(
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
        if outcome.schedule is not None:
            schedule = outcome.schedule
            conn.execute(
                """UPDATE feeds SET poll_interval_s = ?, poll_reason = ?, publish_gap_s = ?,
                     feed_ttl_s = ?, skip_hours = ?, skip_days = ?, last_new_at = ?
                   WHERE id = ?""",
                (*rows.schedule_values(schedule), ts(schedule.last_new_at), feed_id),
            )
    else:
        conn.execute(
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
