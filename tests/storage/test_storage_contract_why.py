"""The storage contract, continued: what /why reads back (bot.core.explain). Why a story was held
back when first seen, the duplicates another feed listed, and a card's last error, on every
backend of conftest.BACKENDS."""

from __future__ import annotations

from datetime import timedelta

from bot.core.models import HELD_BASELINE, HELD_OLD, DeliveryStatus, Sighting
from bot.core.pipeline import IngestPlan, NewStory
from bot.core.store import SightingRow
from tests.storage.test_storage_contract import (
    AP,
    NOW,
    OK,
    RETENTION,
    REUTERS,
    bare_story,
    config_feeds,
    delivery_to,
    ecb_story,
    editor_route,
    ingest,
    kyiv_story,
    markets_route,
    quake_story,
)


async def test_a_story_keeps_why_it_was_held_back_when_first_seen(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    plan = IngestPlan(
        new_stories=[
            NewStory(-1, ecb_story(), False, HELD_BASELINE),
            NewStory(-2, quake_story("Reuters World"), False, HELD_OLD),
            NewStory(-3, bare_story(), True),
        ]
    )

    ids = await storage.apply_ingest(feed, plan, OK, NOW)

    loaded = await storage.load_stories(list(ids.values()))
    assert [loaded[ids[label]].held for label in (-1, -2, -3)] == [HELD_BASELINE, HELD_OLD, ""]
    recent = await storage.recent_stories(NOW - timedelta(hours=1))
    assert {s.id: s.held for s in recent} == {
        ids[-1]: HELD_BASELINE,
        ids[-2]: HELD_OLD,
        ids[-3]: "",
    }


async def test_recent_titles_are_the_headlines_of_the_window_newest_first(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    (old,) = await ingest(storage, feed, [(ecb_story(), [])], now=NOW - timedelta(days=8))
    first, second = await ingest(
        storage, feed, [(quake_story("Reuters World"), []), (bare_story(), [])]
    )
    (newest,) = await ingest(storage, feed, [(kyiv_story("Reuters World"), [])], now=NOW)

    titles = await storage.recent_titles(NOW - timedelta(days=7), limit=10)

    assert titles == [
        (newest, kyiv_story().title),
        (second, bare_story().title),
        (first, quake_story().title),
    ]
    assert await storage.recent_titles(NOW - timedelta(days=7), limit=2) == titles[:2]
    assert old not in {story_id for story_id, _ in titles}


async def test_a_duplicate_is_kept_once_per_story_feed_and_link(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    (story_id,) = await ingest(storage, reuters, [(ecb_story(), [markets_route()])])
    (other_id,) = await ingest(storage, reuters, [(bare_story(), [])])
    link = "https://apnews.com/article/ecb-rates-9c1d"
    first = SightingRow(story_id, "AP Top News", "ECB leaves rates unchanged", link)

    await storage.apply_ingest(ap, IngestPlan(sightings=[first]), OK, NOW)
    # Listed again an hour later, reworded: the first sighting stands.
    again = first._replace(title="ECB leaves rates unchanged, eyes April")
    linkless = SightingRow(story_id, "AP Top News", "ECB decision", None)
    later = NOW + timedelta(hours=1)
    await storage.apply_ingest(ap, IngestPlan(sightings=[again, linkless]), OK, later)

    assert await storage.sightings(story_id) == [
        Sighting(story_id, "AP Top News", "ECB leaves rates unchanged", link, NOW),
        Sighting(story_id, "AP Top News", "ECB decision", None, later),
    ]
    assert await storage.sightings(other_id) == []
    assert await storage.sightings(story_id + 1000) == []

    # They go with their story when it is pruned.
    await storage.prune(NOW + timedelta(days=40), **RETENTION)
    assert await storage.sightings(story_id) == []


async def test_a_cards_last_error_is_read_back_with_it(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    (story_id,) = await ingest(storage, feed, [(ecb_story(), [markets_route(), editor_route()])])
    channel = await delivery_to(storage, story_id, markets_route().target)
    person = await delivery_to(storage, story_id, editor_route().target)
    assert (channel.error, person.error) == (None, None)

    await storage.reschedule(channel.id, "HTTP 503", NOW + timedelta(minutes=1), update=False)
    await storage.mark_failed(person.id, "50007: Cannot send messages to this user", NOW)

    channel = await delivery_to(storage, story_id, markets_route().target)
    person = await delivery_to(storage, story_id, editor_route().target)
    assert (channel.status, channel.error) == (DeliveryStatus.PENDING, "HTTP 503")
    assert person.status == DeliveryStatus.FAILED
    assert person.error == "50007: Cannot send messages to this user"
