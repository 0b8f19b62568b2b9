"""The storage contract for WebSub push subscriptions (bot.feeds.websub), on every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.core.store import StorageError, WebSubSubscription
from tests.storage.test_storage_contract import AP, KYIV, NOW, REUTERS, chat_feed, config_feeds

CET = timezone(timedelta(hours=1))


def subscription(feed_id: int, callback: str = "cb-1") -> WebSubSubscription:
    return WebSubSubscription(
        feed_id=feed_id,
        hub="https://hub.example/",
        topic="https://feeds.example/world.xml",
        callback=callback,
        secret="s3cret-for-the-test",
        next_attempt_at=NOW,
    )


async def test_a_subscription_is_saved_and_read_back_by_feed_and_by_callback(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    first = subscription(reuters.id, "cb-reuters")
    await storage.save_websub(first)
    await storage.save_websub(subscription(ap.id, "cb-ap"))
    assert await storage.get_websub(reuters.id) == first
    assert await storage.websub_by_callback("cb-ap") == subscription(ap.id, "cb-ap")
    assert await storage.websub_by_callback("cb-unknown") is None
    assert await storage.get_websub(reuters.id + ap.id + 100) is None
    assert [s.feed_id for s in await storage.websub_subscriptions()] == sorted([reuters.id, ap.id])


async def test_saving_again_replaces_the_feeds_subscription_with_times_in_utc(storage):
    [reuters] = await config_feeds(storage, REUTERS)
    await storage.save_websub(subscription(reuters.id))
    verified = replace(
        subscription(reuters.id, "cb-2"),
        lease_expires_at=datetime(2025, 3, 24, 10, 30, tzinfo=CET),
        next_attempt_at=datetime(2025, 3, 22, 10, 30, tzinfo=CET),
        failures=2,
        last_error="HTTP 503",
    )
    await storage.save_websub(verified)
    [stored] = await storage.websub_subscriptions()
    assert stored == verified
    assert (
        stored.lease_expires_at.tzinfo == UTC and stored.next_attempt_at.utcoffset() == timedelta(0)
    )
    assert await storage.websub_by_callback("cb-1") is None
    cleared = replace(verified, lease_expires_at=None, next_attempt_at=None)
    await storage.save_websub(cleared)
    assert await storage.get_websub(reuters.id) == cleared


async def test_a_callback_is_never_shared_by_two_feeds(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    await storage.save_websub(subscription(reuters.id, "cb-same"))
    with pytest.raises(StorageError):
        await storage.save_websub(subscription(ap.id, "cb-same"))
    assert (await storage.websub_by_callback("cb-same")).feed_id == reuters.id
    assert await storage.get_websub(ap.id) is None


async def test_a_subscription_goes_with_its_feed_or_when_removed(storage):
    reuters, kyiv = *(await config_feeds(storage, REUTERS)), await chat_feed(storage, KYIV)
    await storage.save_websub(subscription(reuters.id, "cb-reuters"))
    await storage.save_websub(subscription(kyiv.id, "cb-kyiv"))
    assert await storage.remove_feed(KYIV.name)
    assert await storage.websub_by_callback("cb-kyiv") is None
    await storage.remove_websub(reuters.id)
    await storage.remove_websub(reuters.id)  # twice: nothing to remove is not an error
    assert await storage.websub_subscriptions() == []
    with pytest.raises(StorageError):  # no such feed
        await storage.save_websub(subscription(kyiv.id + 1000, "cb-none"))
