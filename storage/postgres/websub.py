"""WebSub push subscriptions (bot.feeds.websub): one row per feed, whichever worker wrote it."""

from __future__ import annotations

import asyncpg

from bot.core.store import StorageError, WebSubSubscription
from storage.postgres.base import PostgresBase, utc

_COLUMNS = (
    "feed_id, hub, topic, callback, secret, lease_expires_at, next_attempt_at, failures, last_error"
)


def _subscription(row: asyncpg.Record) -> WebSubSubscription:
    return WebSubSubscription(
        feed_id=row["feed_id"],
        hub=row["hub"],
        topic=row["topic"],
        callback=row["callback"],
        secret=row["secret"],
        lease_expires_at=utc(row["lease_expires_at"]),
        next_attempt_at=utc(row["next_attempt_at"]),
        failures=row["failures"],
        last_error=row["last_error"],
    )


class WebSubTables(PostgresBase):
    async def save_websub(self, subscription: WebSubSubscription) -> None:
        s = subscription
        try:
            await self._write(
                f"""INSERT INTO websub_subscriptions ({_COLUMNS})
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                    ON CONFLICT (feed_id) DO UPDATE SET hub = excluded.hub,
                      topic = excluded.topic, callback = excluded.callback,
                      secret = excluded.secret, lease_expires_at = excluded.lease_expires_at,
                      next_attempt_at = excluded.next_attempt_at,
                      failures = excluded.failures, last_error = excluded.last_error""",  # noqa: S608 - constant
                s.feed_id,
                s.hub,
                s.topic,
                s.callback,
                s.secret,
                s.lease_expires_at,
                s.next_attempt_at,
                s.failures,
                s.last_error,
            )
        except (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError) as exc:
            raise StorageError(str(exc)) from exc

    async def get_websub(self, feed_id: int) -> WebSubSubscription | None:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE feed_id = $1",  # noqa: S608
            feed_id,
        )
        return _subscription(rows[0]) if rows else None

    async def websub_by_callback(self, callback: str) -> WebSubSubscription | None:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE callback = $1",  # noqa: S608
            callback,
        )
        return _subscription(rows[0]) if rows else None

    async def websub_subscriptions(self) -> list[WebSubSubscription]:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM websub_subscriptions ORDER BY feed_id"  # noqa: S608
        )
        return [_subscription(row) for row in rows]

    async def remove_websub(self, feed_id: int) -> None:
        await self._write("DELETE FROM websub_subscriptions WHERE feed_id = $1", feed_id)
