"""WebSub push subscriptions (bot.feeds.websub): one row per feed."""

from __future__ import annotations

import sqlite3

from bot.core.store import StorageError, WebSubSubscription
from storage.sqlite.base import SqliteBase, dt, ts

_COLUMNS = (
    "feed_id, hub, topic, callback, secret, lease_expires_at, next_attempt_at, failures, last_error"
)


def _subscription(row: sqlite3.Row) -> WebSubSubscription:
    return WebSubSubscription(
        feed_id=row["feed_id"],
        hub=row["hub"],
        topic=row["topic"],
        callback=row["callback"],
        secret=row["secret"],
        lease_expires_at=dt(row["lease_expires_at"]),
        next_attempt_at=dt(row["next_attempt_at"]),
        failures=row["failures"],
        last_error=row["last_error"],
    )


class WebSubTables(SqliteBase):
    async def save_websub(self, subscription: WebSubSubscription) -> None:
        s = subscription
        try:
            await self._write(
                f"""INSERT INTO websub_subscriptions ({_COLUMNS})
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (feed_id) DO UPDATE SET hub = excluded.hub,
                      topic = excluded.topic, callback = excluded.callback,
                      secret = excluded.secret, lease_expires_at = excluded.lease_expires_at,
                      next_attempt_at = excluded.next_attempt_at,
                      failures = excluded.failures, last_error = excluded.last_error""",  # noqa: S608 - constant
                (
                    s.feed_id,
                    s.hub,
                    s.topic,
                    s.callback,
                    s.secret,
                    ts(s.lease_expires_at),
                    ts(s.next_attempt_at),
                    s.failures,
                    s.last_error,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise StorageError(str(exc)) from exc

    async def get_websub(self, feed_id: int) -> WebSubSubscription | None:
        return await self._one("feed_id = ?", feed_id)

    async def websub_by_callback(self, callback: str) -> WebSubSubscription | None:
        return await self._one("callback = ?", callback)

    async def websub_subscriptions(self) -> list[WebSubSubscription]:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM websub_subscriptions ORDER BY feed_id"  # noqa: S608
        )
        return [_subscription(row) for row in rows]

    async def remove_websub(self, feed_id: int) -> None:
        await self._write("DELETE FROM websub_subscriptions WHERE feed_id = ?", (feed_id,))

    async def _one(self, condition: str, value: object) -> WebSubSubscription | None:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE {condition}",  # noqa: S608 - constants
            (value,),
        )
        return _subscription(rows[0]) if rows else None
