"""WebSub push subscriptions, in memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bot.core.store import StorageError, WebSubSubscription
from storage.memory.base import MemoryBase, moment, ts


def _stored(value: datetime | None) -> datetime | None:
    return None if value is None else moment(ts(value))


class WebSubTables(MemoryBase):
    async def save_websub(self, subscription: WebSubSubscription) -> None:
        if subscription.feed_id not in self._feeds:
            raise StorageError("FOREIGN KEY constraint failed (no such feed)")
        for other in self._websub.values():
            if other.callback == subscription.callback and other.feed_id != subscription.feed_id:
                raise StorageError("UNIQUE constraint failed: websub_subscriptions.callback")
        self._websub[subscription.feed_id] = replace(
            subscription,
            lease_expires_at=_stored(subscription.lease_expires_at),
            next_attempt_at=_stored(subscription.next_attempt_at),
        )

    async def get_websub(self, feed_id: int) -> WebSubSubscription | None:
        return self._websub.get(feed_id)

    async def websub_by_callback(self, callback: str) -> WebSubSubscription | None:
        return next((s for s in self._websub.values() if s.callback == callback), None)

    async def websub_subscriptions(self) -> list[WebSubSubscription]:
        return [self._websub[feed_id] for feed_id in sorted(self._websub)]

    async def remove_websub(self, feed_id: int) -> None:
        self._websub.pop(feed_id, None)
