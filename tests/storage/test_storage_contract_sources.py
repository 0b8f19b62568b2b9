"""The storage contract for the latency a desk feels (bot.core.latency): which feeds carry a
story and when each first did, a publish time recorded as a stamp, and the two readers behind
/feed list. Runs once per backend of `conftest.BACKENDS`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.core.latency import CardTiming, SourceSighting
from bot.core.models import FeedSpec, Story
from bot.core.routing import Route
from bot.core.store import (
    CarrierRow,
    DeliveryRow,
    IngestBatch,
    NewStoryRow,
    PollOutcome,
    StoryRef,
)

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
OK = PollOutcome(ok=True)
DESK = Route("discord:1093847561029384756", ("Desk",), None, ("summit",))
PUBLISHED = NOW - timedelta(seconds=40)


def summit(feed: str) -> Story:
    return Story(
        feed=feed, title="Summit in Vladivostok", link="https://x.example/s", published=PUBLISHED
    )


async def two_feeds(storage):
    await storage.sync_config_feeds(
        [
            FeedSpec("Wire A", "https://a.example/rss", timedelta(minutes=2)),
            FeedSpec("Wire B", "https://b.example/rss", timedelta(minutes=2)),
        ],
        NOW,
    )
    return await storage.get_feed("Wire A"), await storage.get_feed("Wire B")


async def test_each_feed_keeps_its_first_sighting_of_a_story(storage):
    a, b = await two_feeds(storage)
    ids = await storage.apply_ingest(
        a,
        IngestBatch(
            new_stories=[NewStoryRow(-1, summit("Wire A"), True, stamped=True)],
            carriers=[CarrierRow(StoryRef.new(-1), a.id, a.name, True)],
        ),
        OK,
        NOW,
    )
    story_id = ids[-1]
    stored = (await storage.load_stories([story_id]))[story_id]
    assert stored.published_stamped is True
    later = NOW + timedelta(seconds=95)
    for moment in (later, later + timedelta(minutes=5)):  # the second sighting changes nothing
        await storage.apply_ingest(
            b,
            IngestBatch(carriers=[CarrierRow(StoryRef.existing(story_id), b.id, b.name, False)]),
            OK,
            moment,
        )
    assert await storage.story_carriers([story_id, story_id + 1000]) == {
        story_id: [
            SourceSighting(a.id, "Wire A", NOW, True),
            SourceSighting(b.id, "Wire B", later, False),
        ]
    }
    assert await storage.shared_stories(NOW) == {
        story_id: [
            SourceSighting(a.id, "Wire A", NOW, True),
            SourceSighting(b.id, "Wire B", later, False),
        ]
    }
    # Seen last before the window: not shared in it.
    assert await storage.shared_stories(later + timedelta(seconds=1)) == {}
    # Pruned with its story.
    await storage.prune(
        NOW + timedelta(days=40),
        stories=timedelta(days=30),
        keys=timedelta(days=365),
        window=timedelta(hours=48),
    )
    assert await storage.story_carriers([story_id]) == {}
    assert await storage.shared_stories(NOW) == {}


async def test_a_story_one_feed_carries_is_not_shared(storage):
    a, _ = await two_feeds(storage)
    await storage.apply_ingest(
        a,
        IngestBatch(
            new_stories=[NewStoryRow(-1, summit("Wire A"), True)],
            carriers=[CarrierRow(StoryRef.new(-1), a.id, a.name, False)],
        ),
        OK,
        NOW,
    )
    assert await storage.shared_stories(NOW - timedelta(days=1)) == {}


async def test_card_timings_give_each_story_its_first_card(storage):
    a, _ = await two_feeds(storage)
    other = Route("slack:C05LKQ2M8TZ", ("Desk",), None, ("summit",))
    ids = await storage.apply_ingest(
        a,
        IngestBatch(
            new_stories=[NewStoryRow(-1, summit("Wire A"), True, stamped=True)],
            deliveries=[DeliveryRow(StoryRef.new(-1), DESK), DeliveryRow(StoryRef.new(-1), other)],
        ),
        OK,
        NOW,
    )
    assert await storage.card_timings(NOW - timedelta(days=1)) == []  # none sent yet
    due = await storage.due_deliveries(NOW, 10)
    await storage.mark_sent(due[1][0].id, "m2", NOW + timedelta(seconds=9))
    await storage.mark_sent(due[0][0].id, "m1", NOW + timedelta(seconds=2))
    assert await storage.card_timings(NOW - timedelta(days=1)) == [
        CardTiming(a.id, "Wire A", PUBLISHED, True, NOW, NOW + timedelta(seconds=2))
    ]
    # A story whose first card went out before the window is not in it.
    assert await storage.card_timings(NOW + timedelta(seconds=5)) == []
    assert ids
