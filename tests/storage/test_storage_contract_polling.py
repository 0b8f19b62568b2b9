"""The storage contract for adaptive polling (bot.core.polling): a feed's schedule is kept with
it, so a restart polls it as before, and a new interval in the config file applies at once.

Runs once per backend of `conftest.BACKENDS`, like test_storage_contract.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.core.models import FeedSpec, Origin
from bot.core.polling import PollSchedule
from bot.core.store import IngestBatch, PollOutcome

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
WIRE = FeedSpec("Wire", "https://wire.example/rss", timedelta(minutes=5))
SCHEDULE = PollSchedule(
    interval=timedelta(seconds=30),
    reason="publishes every ~1m; skips Saturday, Sunday",
    gap=timedelta(seconds=61.5),
    last_new_at=NOW - timedelta(minutes=1),
    ttl=timedelta(days=3650),
    skip_hours=frozenset({0, 1, 23}),
    skip_days=frozenset({5, 6}),
)


async def test_a_feed_has_no_schedule_until_it_is_polled_and_polls_at_its_interval(storage):
    await storage.sync_config_feeds([WIRE], NOW)
    feed = await storage.get_feed("Wire")
    assert feed.schedule is None and feed.fixed is False
    assert feed.poll_interval == timedelta(minutes=5)
    assert feed.describe_polling() == "every 5m (rate not known yet)"


async def test_record_poll_keeps_the_schedule_and_a_failed_poll_leaves_it(storage):
    await storage.sync_config_feeds([WIRE], NOW)
    feed = await storage.get_feed("Wire")
    await storage.record_poll(feed, PollOutcome(ok=True, schedule=SCHEDULE), NOW)
    feed = await storage.get_feed("Wire")
    assert feed.schedule == SCHEDULE
    assert feed.poll_interval == timedelta(seconds=30)

    await storage.record_poll(feed, PollOutcome(ok=False, error="HTTP 500", failures=1), NOW)
    await storage.record_poll(feed, PollOutcome(ok=True), NOW)  # no schedule: left as it is
    assert (await storage.get_feed_by_id(feed.id)).schedule == SCHEDULE
    assert [f.schedule for f in await storage.list_feeds()] == [SCHEDULE]


async def test_apply_ingest_writes_the_schedule_with_the_poll(storage):
    await storage.sync_config_feeds([WIRE], NOW)
    feed = await storage.get_feed("Wire")
    silent = PollSchedule(timedelta(hours=1), "silent", last_new_at=NOW)
    await storage.apply_ingest(feed, IngestBatch(), PollOutcome(ok=True, schedule=silent), NOW)
    after = await storage.get_feed("Wire")
    assert after.schedule == silent and after.baseline_done
    assert after.describe_polling() == "every 1h (silent)"


async def test_a_new_interval_in_the_file_drops_the_learnt_one_and_the_same_keeps_it(storage):
    await storage.sync_config_feeds([WIRE], NOW)
    feed = await storage.get_feed("Wire")
    await storage.record_poll(feed, PollOutcome(ok=True, schedule=SCHEDULE), NOW)

    await storage.sync_config_feeds([WIRE], NOW)  # a restart with the same file
    assert (await storage.get_feed("Wire")).schedule == SCHEDULE

    fixed = FeedSpec(WIRE.name, WIRE.url, timedelta(minutes=2), fixed=True)
    await storage.sync_config_feeds([fixed], NOW)
    after = await storage.get_feed("Wire")
    assert after.fixed is True and after.schedule is None
    assert after.describe_polling() == "every 2m (fixed)"


async def test_a_chat_feed_keeps_whether_its_interval_is_its_own(storage):
    spec = FeedSpec("Blog", "https://blog.example/rss", timedelta(hours=2), Origin.CHAT, True)
    added = await storage.add_feed(spec, "discord:1", NOW)
    assert added.fixed is True and added.poll_interval == timedelta(hours=2)
