"""The storage contract, spoken in the store's own rows (bot.core.store: IngestBatch and its
StoryRefs), and the rules of order and identity that every backend must keep alike.

Runs once per backend of `conftest.BACKENDS`, like test_storage_contract.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.identity import IdentityKey, KeyKind, strong_keys
from bot.core.models import DeliveryStatus, FeedSpec, Origin, Story
from bot.core.routing import Route
from bot.core.store import (
    WINDOW_HITS_PER_KEY,
    AuditEntry,
    DeliveryRow,
    IngestBatch,
    KeyRow,
    NewStoryRow,
    PollOutcome,
    RevisionRow,
    StoryRef,
)

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
OK = PollOutcome(ok=True, etag='"v1"')
WIRE = FeedSpec("Wire", "https://wire.example/rss", timedelta(minutes=5))
DESK = "discord:1093847561029384756"
FOREIGN = "slack:C05LKQ2M8TZ"


def bulletin(n: int) -> Story:
    return Story(
        feed="Wire",
        title=f"River levels rise at gauge {n}",
        link=f"https://wire.example/bulletin/{n}",
        guid=f"bulletin-{n}",
    )


def desk(*matched: str) -> Route:
    return Route(DESK, ("Desk",), None, matched or ("river",))


async def wire(storage):
    await storage.sync_config_feeds([WIRE], NOW)
    return await storage.get_feed(WIRE.name)


async def test_a_batch_names_new_and_stored_stories_by_explicit_references(storage):
    feed = await wire(storage)
    (stored,) = (
        await storage.apply_ingest(
            feed, IngestBatch(new_stories=[NewStoryRow(1, bulletin(1), True)]), OK, NOW
        )
    ).values()
    # Labels are the caller's own names, positive or not: the store gives them no meaning.
    key = IdentityKey(KeyKind.GUID, 4242)
    batch = IngestBatch(
        new_stories=[NewStoryRow(7, bulletin(2), True), NewStoryRow(3, bulletin(3), False)],
        keys=[KeyRow(StoryRef.new(3), key), KeyRow(StoryRef.existing(stored), key)],
        deliveries=[
            DeliveryRow(StoryRef.new(7), desk()),
            DeliveryRow(StoryRef.existing(stored), desk("gauge")),
        ],
    )

    ids = await storage.apply_ingest(feed, batch, OK, NOW + timedelta(minutes=5))

    assert set(ids) == {7, 3}
    assert stored < ids[7] < ids[3]
    assert {h.story_id for h in await storage.find_keys([key.value])} == {stored, ids[3]}
    assert await storage.delivery_targets([stored, ids[7], ids[3]]) == {
        stored: {DESK},
        ids[7]: {DESK},
    }
    loaded = await storage.load_stories([ids[7], ids[3]])
    assert (loaded[ids[7]].story, loaded[ids[7]].alertable) == (bulletin(2), True)
    assert (loaded[ids[3]].story, loaded[ids[3]].alertable) == (bulletin(3), False)


async def test_story_ids_grow_from_poll_to_poll(storage):
    feed = await wire(storage)
    seen: list[int] = []
    for poll in range(3):
        batch = IngestBatch(
            new_stories=[NewStoryRow(-n, bulletin(10 * poll + n), False) for n in (1, 2)]
        )
        ids = await storage.apply_ingest(feed, batch, OK, NOW + timedelta(minutes=poll))
        seen += [ids[-1], ids[-2]]

    assert seen == sorted(seen) and len(set(seen)) == 6


async def test_a_poll_that_cannot_be_saved_writes_nothing_and_marks_the_feed(storage):
    feed = await wire(storage)
    batch = IngestBatch(
        new_stories=[NewStoryRow(-1, bulletin(1), True)],
        keys=[KeyRow(StoryRef.new(-1), IdentityKey(KeyKind.GUID, 99))],
        # A card for a story that does not exist: the store refuses the whole poll.
        deliveries=[
            DeliveryRow(StoryRef.new(-1), desk()),
            DeliveryRow(StoryRef.existing(999), desk()),
        ],
    )

    with pytest.raises(Exception, match="FOREIGN KEY"):
        await storage.apply_ingest(feed, batch, OK, NOW)

    assert await storage.count_stories() == 0
    assert await storage.find_keys([99]) == []
    assert await storage.delivery_counts() == {"pending": 0, "sent": 0, "failed": 0}
    after = await storage.get_feed(WIRE.name)
    assert not after.baseline_done and after.etag is None
    assert after.failures == 1
    assert after.last_error.startswith("cannot save the poll: FOREIGN KEY")


async def test_a_windowed_lookup_returns_only_the_newest_holders_of_a_common_key(storage):
    feed = await wire(storage)
    common = IdentityKey(KeyKind.SHINGLE, 31337)
    count = WINDOW_HITS_PER_KEY * 3
    old = IngestBatch(
        new_stories=[NewStoryRow(-1, bulletin(0), False)],
        keys=[KeyRow(StoryRef.new(-1), common)],
    )
    (outside,) = (await storage.apply_ingest(feed, old, OK, NOW - timedelta(days=3))).values()
    batch = IngestBatch(
        new_stories=[NewStoryRow(-n, bulletin(n), False) for n in range(1, count + 1)],
        keys=[KeyRow(StoryRef.new(-n), common) for n in range(1, count + 1)],
    )
    ids = await storage.apply_ingest(feed, batch, OK, NOW)

    windowed = await storage.find_keys([common.value], since=NOW - timedelta(hours=48))

    newest = sorted(ids.values())[-WINDOW_HITS_PER_KEY:]
    assert sorted(h.story_id for h in windowed) == newest
    assert all((h.key, h.kind, h.seen_at) == (common.value, KeyKind.SHINGLE, NOW) for h in windowed)
    everyone = {h.story_id for h in await storage.find_keys([common.value, common.value])}
    assert everyone == {outside, *ids.values()}


async def test_a_removed_feed_leaves_its_stories_and_their_keys(storage):
    kyiv = await storage.add_feed(
        FeedSpec("Kyiv", "https://kyiv.example/rss", timedelta(minutes=5), Origin.CHAT),
        "slack:U1",
        NOW,
    )
    story = replace(bulletin(1), feed="Kyiv")
    strong = strong_keys(story, kyiv.id, guid_unique=True)
    batch = IngestBatch(
        new_stories=[NewStoryRow(-1, story, True)],
        keys=[KeyRow(StoryRef.new(-1), k) for k in strong],
    )
    (story_id,) = (await storage.apply_ingest(kyiv, batch, OK, NOW)).values()

    assert await storage.remove_feed("KYIV")

    loaded = (await storage.load_stories([story_id]))[story_id]
    assert loaded.feed_id is None and loaded.story == story
    assert {h.story_id for h in await storage.find_keys([k.value for k in strong])} == {story_id}
    assert await storage.stories_per_feed(NOW - timedelta(hours=1)) == {}


async def test_feeds_and_watchlists_are_listed_by_name_ignoring_letter_case(storage):
    specs = [replace(WIRE, name=name) for name in ("reuters", "AP", "bbc World")]
    await storage.sync_config_feeds(specs, NOW)
    for name in ("zeta", "Alpha", "mid"):
        await storage.add_watchlist(name, "x", [DESK], "slack:U1", NOW)

    assert [f.name for f in await storage.list_feeds()] == ["AP", "bbc World", "reuters"]
    assert [w.name for w in await storage.list_watchlists()] == ["Alpha", "mid", "zeta"]
    assert (await storage.get_watchlist("ALPHA")).name == "Alpha"


async def test_the_file_takes_over_a_chat_feed_of_the_same_name(storage):
    chat = await storage.add_feed(
        FeedSpec("Wire", "https://wire.example/rss", timedelta(minutes=2), Origin.CHAT),
        "slack:U1",
        NOW,
    )

    await storage.sync_config_feeds([replace(WIRE, name="WIRE")], NOW)

    (feed,) = await storage.list_feeds()
    assert (feed.id, feed.name, feed.origin) == (chat.id, "Wire", Origin.CONFIG)
    assert feed.interval == WIRE.interval
    assert await storage.remove_feed("Wire") is False


async def test_a_card_sent_in_a_digest_is_never_due_for_an_edit(storage):
    feed = await wire(storage)
    batch = IngestBatch(
        new_stories=[NewStoryRow(-1, bulletin(1), True)],
        deliveries=[
            DeliveryRow(StoryRef.new(-1), desk()),
            DeliveryRow(StoryRef.new(-1), Route(FOREIGN, ("Other",), None, ("river",))),
        ],
    )
    (story_id,) = (await storage.apply_ingest(feed, batch, OK, NOW)).values()
    digested, single = await storage.deliveries_for_story(story_id)
    await storage.assign_digest([digested.id, single.id], "burst-1")
    await storage.mark_sent(single.id, "m-1", NOW)
    await storage.assign_digest([single.id], "burst-2")  # only pending cards join a digest
    await storage.mark_sent(digested.id, "m-2", NOW, digest=True, revision=None)

    later = NOW + timedelta(minutes=5)
    revision = RevisionRow(story_id, replace(bulletin(1), title="Rivers burst banks"), True, True)
    await storage.apply_ingest(feed, IngestBatch(revisions=[revision]), OK, later)

    by_id = {d.id: d for d in await storage.deliveries_for_story(story_id)}
    assert by_id[digested.id].digest_group == "burst-1"
    assert by_id[single.id].digest_group == "burst-1"
    assert not by_id[digested.id].update_pending
    assert by_id[single.id].update_pending
    assert [d.id for d, _ in await storage.due_deliveries(later, 10)] == [single.id]
    # Sent behind a revision it did not show, outside a digest: due again at once.
    await storage.mark_sent(single.id, "m-1", later, revision=0)
    assert (await storage.deliveries_for_story(story_id))[1].update_pending


async def test_an_update_waiting_out_a_retry_holds_back_no_new_card(storage):
    feed = await wire(storage)
    first = IngestBatch(
        new_stories=[NewStoryRow(-1, bulletin(1), True)],
        deliveries=[DeliveryRow(StoryRef.new(-1), desk())],
    )
    (story_id,) = (await storage.apply_ingest(feed, first, OK, NOW)).values()
    (card,) = await storage.deliveries_for_story(story_id)
    await storage.mark_sent(card.id, "m-1", NOW)
    edit = RevisionRow(story_id, replace(bulletin(1), title="Rivers burst banks"), True, True)
    second = IngestBatch(
        new_stories=[NewStoryRow(-1, bulletin(2), True)],
        revisions=[edit],
        deliveries=[DeliveryRow(StoryRef.new(-1), desk())],
    )
    ids = await storage.apply_ingest(feed, second, OK, NOW)
    await storage.reschedule(card.id, "HTTP 502", NOW + timedelta(minutes=1), update=True)

    due = await storage.due_deliveries(NOW, 10)

    assert [(d.story_id, d.status) for d, _ in due] == [(ids[-1], DeliveryStatus.PENDING)]


async def test_subscriptions_stop_at_the_limit_per_person(storage):
    for n in range(3):
        assert await storage.add_subscription("slack:U1", f"topic {n}", NOW, limit=3)
    assert not await storage.add_subscription("slack:U1", "topic 9", NOW, limit=3)
    assert await storage.add_subscription("slack:U1", "topic 9", NOW)
    assert await storage.add_subscription("slack:U2", "topic 9", NOW, limit=1)

    assert [s.query for s in await storage.list_subscriptions("slack:U1")] == [
        "topic 0",
        "topic 1",
        "topic 2",
        "topic 9",
    ]
    ids = [s.id for s in await storage.list_subscriptions()]
    assert ids == sorted(ids) and len(set(ids)) == 5


async def test_recent_for_subscriber_is_limited_newest_card_first(storage):
    feed = await wire(storage)
    person = "discord:284917365023981569"
    route = Route("discord:dm:284917365023981569", (), person, ("river",))
    ids = []
    for n in range(3):
        batch = IngestBatch(
            new_stories=[NewStoryRow(-1, bulletin(n), True)],
            deliveries=[DeliveryRow(StoryRef.new(-1), route)],
        )
        ids += (await storage.apply_ingest(feed, batch, OK, NOW + timedelta(minutes=n))).values()

    assert [s.id for s in await storage.recent_for_subscriber(person, 2)] == ids[::-1][:2]


async def test_audit_entries_are_values_with_names(storage):
    await storage.record_audit("slack:U1", "feed.add", {"name": "Wire"}, NOW)
    await storage.record_audit("slack:U1", "feed.remove", {"name": "Wire"}, NOW)

    entries = await storage.audit_entries(limit=5)

    assert entries[0] == AuditEntry(NOW, "slack:U1", "feed.remove", {"name": "Wire"})
    assert [e.action for e in entries] == ["feed.remove", "feed.add"]
    entries[0].detail["name"] = "changed by the reader"
    assert (await storage.audit_entries())[0].detail == {"name": "Wire"}
