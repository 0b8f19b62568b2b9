"""The storage contract: what every backend must do, checked through the public interface only.

Every test runs once per backend of `conftest.BACKENDS`. Times are explicit values passed to the
store (the store never reads the clock), so nothing here depends on how fast the machine is."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.core.identity import IdentityKey, KeyKind, fuzzy_keys, strong_keys
from bot.core.models import (
    DeliveryStatus,
    FeedSpec,
    FeedState,
    Origin,
    PingWhen,
    Story,
    WatchlistSpec,
)
from bot.core.pipeline import IngestPlan, NewStory, PlannedDelivery, PlannedKey, Revision
from bot.core.ports import PollOutcome
from bot.core.routing import Route
from storage.sqlite import DuplicateName

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
CET = timezone(timedelta(hours=1))

REUTERS = FeedSpec(
    "Reuters World", "https://feeds.reuters.com/reuters/worldNews", timedelta(minutes=5)
)
AP = FeedSpec("AP Top News", "https://apnews.com/hub/ap-top-news.rss", timedelta(minutes=3))
KYIV = FeedSpec(
    "Kyiv Independent",
    "https://kyivindependent.com/news-archive/rss/",
    timedelta(minutes=10),
    origin=Origin.CHAT,
)

OK = PollOutcome(
    ok=True,
    etag='W/"6a1f-1741944600"',
    last_modified="Fri, 14 Mar 2025 09:30:00 GMT",
    body_hash="3f7a9c2e81d54b06a1e2f3c4d5b6a798",
)

MARKETS_CHANNEL = "discord:1093847561029384756"
UKRAINE_CHANNEL = "slack:C05LKQ2M8TZ"
EDITOR_DM = "discord:dm:284917365023981569"


def ecb_story(feed: str = "Reuters World") -> Story:
    return Story(
        feed=feed,
        title="ECB holds rates steady as euro zone inflation eases to 2.3%",
        link="https://www.reuters.com/markets/europe/ecb-holds-rates-steady-2025-03-14/",
        guid="tag:reuters.com,2025:newsml_L8N3PQ0XY",
        summary="The European Central Bank left its deposit rate at 2.75% on Friday, "
        "saying price pressures were fading faster than expected.",
        content="FRANKFURT, March 14 (Reuters) - The European Central Bank left its deposit "
        "rate unchanged at 2.75% on Friday. President Christine Lagarde said the "
        "disinflation process was well on track.",
        published=datetime(2025, 3, 14, 10, 15, 30, tzinfo=CET),
        author="Francesco Canepa",
        categories=("Markets", "Europe", "Zentralbanken"),
        image="https://www.reuters.com/resizer/v2/ECB-LAGARDE.jpg?width=1200",
    )


def quake_story(feed: str = "AP Top News") -> Story:
    return Story(
        feed=feed,
        title="Magnitude 6.1 earthquake strikes off Japan's Miyagi coast, no tsunami warning",
        link="https://apnews.com/article/japan-earthquake-miyagi-3b1f9e0c7a",
        guid="https://apnews.com/article/japan-earthquake-miyagi-3b1f9e0c7a",
        summary="A strong earthquake shook northeastern Japan early Friday; the "
        "meteorological agency said there was no danger of a tsunami.",
        published=datetime(2025, 3, 14, 8, 2, tzinfo=UTC),
        categories=("World News", "Japan"),
    )


def kyiv_story(feed: str = "Kyiv Independent") -> Story:
    return Story(
        feed=feed,
        title="Zelensky meets EU leaders in Brussels ahead of vote on €50 billion aid package",
        link="https://kyivindependent.com/zelensky-meets-eu-leaders-brussels/",
        guid="https://kyivindependent.com/?p=198234",
        summary="President Volodymyr Zelensky arrived in Brussels on Thursday to lobby "
        "for the long-term support facility before Friday's vote.",
        published=datetime(2025, 3, 13, 17, 45, tzinfo=UTC),
        author="Martin Fornusek",
        categories=("Україна", "EU"),
    )


def bare_story(feed: str = "Reuters World") -> Story:
    """What a minimal RSS item gives: a headline and nothing else."""
    return Story(feed=feed, title="Airbus delivers 58 jets in February as engine shortages ease")


def markets_route(*matched: str) -> Route:
    return Route(MARKETS_CHANNEL, ("Markets desk",), None, matched or ("ECB",))


def ukraine_route(*matched: str) -> Route:
    return Route(UKRAINE_CHANNEL, ("Ukraine desk",), None, matched or ("Zelensky",))


def editor_route(*matched: str) -> Route:
    return Route(EDITOR_DM, (), "discord:284917365023981569", matched or ("Lagarde",))


async def config_feeds(storage, *specs: FeedSpec) -> list[FeedState]:
    await storage.sync_config_feeds(list(specs), NOW)
    return [await storage.get_feed(spec.name) for spec in specs]


async def chat_feed(storage, spec: FeedSpec = KYIV) -> FeedState:
    return await storage.add_feed(spec, "discord:284917365023981569", NOW)


def identity_keys(story: Story, feed: FeedState) -> tuple[IdentityKey, ...]:
    return strong_keys(story, feed.id, guid_unique=True) + fuzzy_keys(story)


async def ingest(
    storage,
    feed: FeedState,
    items: Sequence[tuple[Story, Sequence[Route]]],
    now: datetime = NOW,
) -> list[int]:
    """Record `items` as new stories, as one poll would, and return their ids in order."""
    plan = IngestPlan()
    for index, (story, routes) in enumerate(items, start=1):
        ref = -index
        plan.new_stories.append(NewStory(ref, story, alertable=bool(routes)))
        plan.keys.extend(PlannedKey(ref, key) for key in identity_keys(story, feed))
        plan.deliveries.extend(PlannedDelivery(ref, route) for route in routes)
    ids = await storage.apply_ingest(feed, plan, OK, now)
    return [ids[-index] for index in range(1, len(items) + 1)]


async def revise(
    storage,
    feed: FeedState,
    story_id: int,
    story: Story,
    *,
    notify: bool,
    now: datetime,
    max_updates: int = 3,
) -> None:
    plan = IngestPlan(
        revisions=[Revision(story_id, story, notify=notify, alertable=True)],
        max_updates=max_updates,
    )
    await storage.apply_ingest(feed, plan, OK, now)


async def delivery_to(storage, story_id: int, target: str):
    (found,) = [d for d in await storage.deliveries_for_story(story_id) if d.target == target]
    return found


def revised(story: Story) -> Story:
    """The same article after the desk rewrote headline and lead: a material change."""
    return replace(
        story,
        title="ECB holds rates, signals cut in April as inflation eases to 2.3%",
        summary="The ECB kept its deposit rate at 2.75% but Lagarde said a cut in April "
        "was likely if wage growth keeps slowing.",
    )


# --- feeds ----------------------------------------------------------------------------------------


async def test_sync_config_feeds_inserts_the_feeds_of_the_file(storage):
    await storage.sync_config_feeds([REUTERS, AP], NOW)

    feeds = await storage.list_feeds()
    assert [(f.name, f.url, f.interval, f.origin) for f in feeds] == [
        ("AP Top News", AP.url, timedelta(minutes=3), Origin.CONFIG),
        ("Reuters World", REUTERS.url, timedelta(minutes=5), Origin.CONFIG),
    ]
    assert all(f.created_by == "config file" and not f.baseline_done for f in feeds)


async def test_sync_config_feeds_updates_a_feed_in_place(storage):
    (before,) = await config_feeds(storage, REUTERS)

    slower = FeedSpec(REUTERS.name, REUTERS.url, timedelta(minutes=15))
    (after,) = await config_feeds(storage, slower)

    assert after.id == before.id
    assert after.interval == timedelta(minutes=15)


async def test_sync_config_feeds_deactivates_feeds_removed_from_the_file(storage):
    await config_feeds(storage, REUTERS, AP)

    await storage.sync_config_feeds([REUTERS], NOW)

    assert [f.name for f in await storage.list_feeds()] == ["Reuters World"]
    assert await storage.get_feed("AP Top News") is None


async def test_sync_config_feeds_with_an_empty_file_deactivates_every_config_feed(storage):
    await config_feeds(storage, REUTERS, AP)
    await chat_feed(storage)

    await storage.sync_config_feeds([], NOW)

    assert [f.name for f in await storage.list_feeds()] == ["Kyiv Independent"]


async def test_a_feed_put_back_in_the_file_returns_with_its_history(storage):
    _, ap = await config_feeds(storage, REUTERS, AP)
    await storage.record_poll(ap, OK, NOW)
    await storage.sync_config_feeds([REUTERS], NOW)

    (back,) = await config_feeds(storage, AP)

    assert back.id == ap.id
    assert back.etag == OK.etag
    assert back.last_success_at == NOW


async def test_sync_config_feeds_leaves_chat_feeds_alone(storage):
    added = await chat_feed(storage)

    await storage.sync_config_feeds([REUTERS], NOW)
    await storage.sync_config_feeds([AP], NOW)

    assert await storage.get_feed("Kyiv Independent") == added
    assert {f.name for f in await storage.list_feeds()} == {"AP Top News", "Kyiv Independent"}


async def test_changing_a_config_feed_url_resets_its_validators(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    await storage.record_poll(feed, OK, NOW)

    moved = FeedSpec(
        REUTERS.name,
        "https://www.reuters.com/arc/outboundfeeds/world/?outputType=xml",
        REUTERS.interval,
    )
    (after,) = await config_feeds(storage, moved)

    assert after.id == feed.id
    assert after.url == moved.url
    assert (after.etag, after.last_modified, after.body_hash) == (None, None, None)


async def test_resyncing_a_config_feed_with_the_same_url_keeps_its_validators(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    await storage.record_poll(feed, OK, NOW)

    (after,) = await config_feeds(storage, REUTERS)

    assert (after.etag, after.last_modified, after.body_hash) == (
        OK.etag,
        OK.last_modified,
        OK.body_hash,
    )


async def test_add_feed_stores_a_chat_feed(storage):
    feed = await chat_feed(storage)

    assert feed.name == "Kyiv Independent"
    assert feed.url == KYIV.url
    assert feed.interval == timedelta(minutes=10)
    assert feed.origin == Origin.CHAT
    assert feed.created_by == "discord:284917365023981569"
    assert not feed.baseline_done
    assert await storage.get_feed_by_id(feed.id) == feed
    assert await storage.find_feed_by_url(KYIV.url) == feed


@pytest.mark.parametrize("name", ["Reuters World", "reuters world", "REUTERS WORLD"])
async def test_add_feed_refuses_a_taken_name_in_any_case(storage, name):
    (existing,) = await config_feeds(storage, REUTERS)

    with pytest.raises(DuplicateName):
        await storage.add_feed(
            FeedSpec(name, "https://example.org/other.rss", timedelta(minutes=5), Origin.CHAT),
            "slack:U04ABCD1234",
            NOW,
        )

    assert await storage.list_feeds() == [existing]


async def test_add_feed_may_reuse_the_name_of_a_feed_dropped_from_the_file(storage):
    await config_feeds(storage, REUTERS)
    await storage.sync_config_feeds([], NOW)

    spec = FeedSpec(
        "Reuters World", "https://www.reuters.com/world/rss", timedelta(minutes=5), Origin.CHAT
    )
    feed = await storage.add_feed(spec, "slack:U04ABCD1234", NOW)

    assert feed.origin == Origin.CHAT
    assert feed.url == spec.url


async def test_remove_feed_removes_a_chat_feed(storage):
    await chat_feed(storage)

    assert await storage.remove_feed("kyiv independent") is True

    assert await storage.get_feed("Kyiv Independent") is None
    assert await storage.list_feeds() == []
    assert await storage.remove_feed("Kyiv Independent") is False


async def test_remove_feed_refuses_a_config_feed(storage):
    (feed,) = await config_feeds(storage, REUTERS)

    assert await storage.remove_feed("Reuters World") is False

    assert await storage.get_feed("Reuters World") == feed


async def test_record_poll_success_stores_validators_and_clears_failures(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    failing = PollOutcome(
        ok=False, error="HTTP 503", failures=3, retry_at=NOW + timedelta(minutes=20)
    )
    await storage.record_poll(feed, failing, NOW)
    feed = await storage.get_feed(feed.name)

    later = NOW + timedelta(minutes=20)
    await storage.record_poll(feed, OK, later)

    after = await storage.get_feed(feed.name)
    assert (after.etag, after.last_modified, after.body_hash) == (
        OK.etag,
        OK.last_modified,
        OK.body_hash,
    )
    assert after.failures == 0
    assert after.retry_at is None
    assert after.last_success_at == later
    assert after.last_poll_at == later


async def test_record_poll_failure_counts_failures_and_keeps_the_last_success(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    await storage.record_poll(feed, OK, NOW)

    for minutes in (5, 15):
        feed = await storage.get_feed(feed.name)
        at = NOW + timedelta(minutes=minutes)
        await storage.record_poll(
            feed,
            PollOutcome(
                ok=False,
                error="connection reset by peer",
                failures=feed.failures + 1,
                retry_at=at + timedelta(minutes=10),
                etag=feed.etag,
                last_modified=feed.last_modified,
                body_hash=feed.body_hash,
            ),
            at,
        )

    after = await storage.get_feed(feed.name)
    assert after.failures == 2
    assert after.retry_at == NOW + timedelta(minutes=25)
    assert after.last_error == "connection reset by peer"
    assert after.last_error_at == NOW + timedelta(minutes=15)
    assert after.last_poll_at == NOW + timedelta(minutes=15)
    assert after.last_success_at == NOW
    assert after.etag == OK.etag


# --- ingest ---------------------------------------------------------------------------------------


async def test_apply_ingest_assigns_ids_and_round_trips_every_story_field(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    full, bare = ecb_story(), bare_story()

    ids = await storage.apply_ingest(
        feed,
        IngestPlan(new_stories=[NewStory(-1, full, True), NewStory(-2, bare, False)]),
        OK,
        NOW,
    )

    assert set(ids) == {-1, -2}
    assert len(set(ids.values())) == 2
    loaded = await storage.load_stories([ids[-1], ids[-2]])
    assert loaded[ids[-1]].story == full
    assert loaded[ids[-2]].story == bare
    published = loaded[ids[-1]].story.published
    assert published is not None and published.utcoffset() is not None
    assert published == datetime(2025, 3, 14, 9, 15, 30, tzinfo=UTC)
    assert loaded[ids[-1]].story.categories == ("Markets", "Europe", "Zentralbanken")
    bare_loaded = loaded[ids[-2]].story
    assert (bare_loaded.link, bare_loaded.guid, bare_loaded.published) == (None, None, None)
    assert (bare_loaded.author, bare_loaded.image, bare_loaded.categories) == (None, None, ())
    for story_id, alertable in ((ids[-1], True), (ids[-2], False)):
        stored = loaded[story_id]
        assert stored.id == story_id
        assert stored.feed_id == feed.id
        assert stored.first_seen == NOW
        assert stored.revision == 0
        assert stored.alertable is alertable


async def test_load_stories_skips_unknown_ids(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    (story_id,) = await ingest(storage, feed, [(ecb_story(), [])])

    loaded = await storage.load_stories([story_id, story_id + 1000])

    assert list(loaded) == [story_id]
    assert await storage.load_stories([]) == {}


async def test_story_texts_are_the_headline_and_lead_that_load_stories_gives(storage):
    # What a near-duplicate check reads of a candidate: it must be the stored text exactly
    # (the fingerprint of one and of the other must agree), and nothing of unknown ids.
    (feed,) = await config_feeds(storage, REUTERS)
    story = replace(ecb_story(), summary="Rates held at 4%; <b>Lagarde</b> «waits»\n")
    (story_id,) = await ingest(storage, feed, [(story, [])])

    texts = await storage.story_texts([story_id, story_id + 1000])

    loaded = (await storage.load_stories([story_id]))[story_id].story
    assert texts == {story_id: (loaded.title, loaded.summary)}
    assert texts[story_id] == (story.title, story.summary)
    assert await storage.story_texts([]) == {}
    # More ids than SQLite accepts host parameters in one statement.
    assert list(await storage.story_texts([story_id, *range(10**6, 10**6 + 1500)])) == [story_id]


async def test_a_large_poll_is_stored_and_read_back_in_full(storage):
    # More rows than SQLite accepts host parameters in one statement.
    (feed,) = await config_feeds(storage, AP)
    items = [
        (
            Story(
                feed="AP Top News",
                title=f"Live updates: day {n} of the Geneva climate talks",
                link=f"https://apnews.com/live/geneva-climate-talks-day-{n}",
            ),
            [],
        )
        for n in range(1, 1201)
    ]

    ids = await ingest(storage, feed, items)

    loaded = await storage.load_stories(ids)
    assert len(loaded) == 1200
    assert [loaded[i].story.title for i in ids] == [story.title for story, _ in items]
    url_keys = [strong_keys(story, feed.id, guid_unique=False)[0].value for story, _ in items]
    assert {hit.story_id for hit in await storage.find_keys(url_keys)} == set(ids)


async def test_find_keys_finds_permanent_keys_at_any_age(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    story = ecb_story()
    year_ago = NOW - timedelta(days=360)
    (story_id,) = await ingest(storage, feed, [(story, [])], now=year_ago)
    strong = strong_keys(story, feed.id, guid_unique=True)

    hits = await storage.find_keys([k.value for k in strong])

    assert {(h.key, h.kind, h.story_id, h.seen_at) for h in hits} == {
        (k.value, k.kind, story_id, year_ago) for k in strong
    }
    assert {h.kind for h in hits} == {KeyKind.GUID, KeyKind.URL}


async def test_find_keys_with_since_only_returns_keys_seen_inside_the_window(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    old, recent = ecb_story(), quake_story()
    (old_id,) = await ingest(storage, reuters, [(old, [])], now=NOW - timedelta(days=3))
    (recent_id,) = await ingest(storage, ap, [(recent, [])], now=NOW)
    fuzzy = [k.value for k in fuzzy_keys(old) + fuzzy_keys(recent)]

    windowed = await storage.find_keys(fuzzy, since=NOW - timedelta(hours=48))
    everything = await storage.find_keys(fuzzy)

    assert {h.story_id for h in windowed} == {recent_id}
    assert {h.kind for h in windowed} == {KeyKind.TITLE, KeyKind.SHINGLE}
    assert {h.story_id for h in everything} == {old_id, recent_id}


@pytest.mark.parametrize("count", [1, 7, 9, 199, 201, 437])
async def test_find_keys_in_the_window_finds_each_hit_once_whatever_the_number_of_keys(
    storage, count
):
    """The windowed lookup runs statements of a few fixed sizes, padded with a repeated key:
    the padding must neither add hits nor lose any."""
    (feed,) = await config_feeds(storage, REUTERS)
    items = [
        (
            Story(
                feed=feed.name,
                title=f"Bulletin {n}: river levels rise at gauge {n}",
                link=f"https://wire.example/bulletin/{n}",
                summary=f"River level at gauge {n} rose by {n % 7} cm in the last hour.",
            ),
            [],
        )
        for n in range(count)
    ]
    ids = await ingest(storage, feed, items)
    keys = [k.value for story, _ in items for k in strong_keys(story, feed.id, guid_unique=False)]

    hits = await storage.find_keys(keys, since=NOW - timedelta(hours=1))

    pairs = [(h.key, h.story_id) for h in hits]
    assert len(pairs) == len(set(pairs)) == count
    assert {h.story_id for h in hits} == set(ids)


async def test_find_keys_of_unknown_keys_finds_nothing(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    await ingest(storage, feed, [(ecb_story(), [])])

    assert await storage.find_keys([k.value for k in identity_keys(quake_story(), feed)]) == []
    assert await storage.find_keys([]) == []


async def test_apply_ingest_marks_the_baseline_done_and_records_the_poll(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    assert not feed.baseline_done

    await ingest(storage, feed, [(ecb_story(), [])])

    after = await storage.get_feed(feed.name)
    assert after.baseline_done
    assert after.etag == OK.etag
    assert after.last_success_at == NOW


async def test_apply_ingest_stores_pending_deliveries_for_new_stories(storage):
    (feed,) = await config_feeds(storage, REUTERS)

    (story_id,) = await ingest(
        storage, feed, [(ecb_story(), [markets_route("ECB", "Lagarde"), editor_route()])]
    )

    deliveries = await storage.deliveries_for_story(story_id)
    assert [(d.target, d.watchlists, d.subscriber, d.matched, d.status) for d in deliveries] == [
        (MARKETS_CHANNEL, ("Markets desk",), None, ("ECB", "Lagarde"), DeliveryStatus.PENDING),
        (EDITOR_DM, (), "discord:284917365023981569", ("Lagarde",), DeliveryStatus.PENDING),
    ]
    assert all(d.attempts == 0 and d.message_id is None for d in deliveries)
    assert all(d.created_at == NOW and not d.update_pending for d in deliveries)


async def test_a_second_delivery_for_the_same_story_and_target_only_renews_its_terms(storage, raw):
    (feed,) = await config_feeds(storage, REUTERS)
    (story_id,) = await ingest(storage, feed, [(ecb_story(), [markets_route("ECB")])])
    first = await delivery_to(storage, story_id, MARKETS_CHANNEL)
    await storage.mark_sent(first.id, "1349876543210987654", NOW)

    renewed = Route(MARKETS_CHANNEL, ("Markets desk", "Eurozone"), None, ("ECB", "Lagarde"))
    later = NOW + timedelta(minutes=5)
    await storage.apply_ingest(
        feed,
        IngestPlan(
            deliveries=[
                PlannedDelivery(story_id, renewed, refresh=True),
                PlannedDelivery(story_id, ukraine_route("Lagarde")),
            ]
        ),
        OK,
        later,
    )

    assert await raw.delivery_rows(story_id, MARKETS_CHANNEL) == 1
    assert await raw.delivery_rows(story_id, UKRAINE_CHANNEL) == 1
    again = await delivery_to(storage, story_id, MARKETS_CHANNEL)
    assert again.id == first.id
    assert again.matched == ("ECB", "Lagarde")
    assert again.watchlists == ("Markets desk", "Eurozone")
    assert again.status == DeliveryStatus.SENT
    assert again.message_id == "1349876543210987654"
    due = await storage.due_deliveries(later, 10)
    assert [d.target for d, _ in due] == [UKRAINE_CHANNEL]


async def test_delivery_targets_returns_the_destinations_each_story_has(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    ecb_id, quiet_id = await ingest(
        storage, reuters, [(ecb_story(), [markets_route(), editor_route()]), (bare_story(), [])]
    )
    (quake_id,) = await ingest(storage, ap, [(quake_story(), [ukraine_route("Japan")])])

    targets = await storage.delivery_targets([ecb_id, quiet_id, quake_id])

    assert targets == {ecb_id: {MARKETS_CHANNEL, EDITOR_DM}, quake_id: {UKRAINE_CHANNEL}}
    assert await storage.delivery_targets([]) == {}


async def test_a_notified_revision_marks_only_individually_sent_cards_for_update(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    digest_channel = "slack:C02DIGEST77"
    (story_id,) = await ingest(
        storage,
        feed,
        [
            (
                ecb_story(),
                [
                    markets_route(),
                    ukraine_route("Lagarde"),
                    editor_route(),
                    Route(digest_channel, ("Morning digest",), None, ("ECB",)),
                ],
            )
        ],
    )
    sent = await delivery_to(storage, story_id, MARKETS_CHANNEL)
    pending = await delivery_to(storage, story_id, UKRAINE_CHANNEL)
    failed = await delivery_to(storage, story_id, EDITOR_DM)
    in_digest = await delivery_to(storage, story_id, digest_channel)
    await storage.mark_sent(sent.id, "1349876543210987654", NOW)
    await storage.mark_failed(failed.id, "50007: Cannot send messages to this user", NOW)
    await storage.mark_sent(in_digest.id, "1741944661.000200", NOW, digest=True)

    later = NOW + timedelta(minutes=10)
    await revise(storage, feed, story_id, revised(ecb_story()), notify=True, now=later)

    by_id = {d.id: d for d in await storage.deliveries_for_story(story_id)}
    assert by_id[sent.id].update_pending
    assert not by_id[pending.id].update_pending
    assert by_id[pending.id].status == DeliveryStatus.PENDING
    assert not by_id[failed.id].update_pending
    assert by_id[failed.id].status == DeliveryStatus.FAILED
    assert not by_id[in_digest.id].update_pending
    stored = (await storage.load_stories([story_id]))[story_id]
    assert stored.revision == 1
    assert stored.story.title == revised(ecb_story()).title
    due = await storage.due_deliveries(later, 10)
    assert [(d.id, d.status) for d, _ in due] == sorted(
        [(sent.id, DeliveryStatus.SENT), (pending.id, DeliveryStatus.PENDING)]
    )
    assert all(s.story.title == revised(ecb_story()).title for _, s in due)


async def test_a_silent_revision_keeps_the_text_current_without_editing_cards(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    (story_id,) = await ingest(storage, feed, [(ecb_story(), [markets_route()])])
    delivery = await delivery_to(storage, story_id, MARKETS_CHANNEL)
    await storage.mark_sent(delivery.id, "1349876543210987654", NOW)

    longer = replace(ecb_story(), content=ecb_story().content + " More to come.")
    later = NOW + timedelta(minutes=10)
    await revise(storage, feed, story_id, longer, notify=False, now=later)

    stored = (await storage.load_stories([story_id]))[story_id]
    assert stored.story.content.endswith("More to come.")
    assert stored.revision == 0
    assert not (await delivery_to(storage, story_id, MARKETS_CHANNEL)).update_pending
    assert await storage.due_deliveries(later, 10) == []


async def test_a_card_is_edited_at_most_max_updates_times(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    (story_id,) = await ingest(storage, feed, [(ecb_story(), [markets_route()])])
    delivery = await delivery_to(storage, story_id, MARKETS_CHANNEL)
    await storage.mark_sent(delivery.id, "1349876543210987654", NOW)

    edits = 0
    for n in range(1, 5):
        at = NOW + timedelta(minutes=10 * n)
        text = replace(ecb_story(), title=f"ECB holds rates (update {n})")
        await revise(storage, feed, story_id, text, notify=True, now=at, max_updates=2)
        for due, _ in await storage.due_deliveries(at, 10):
            assert due.id == delivery.id
            await storage.mark_update_done(due.id, at)
            edits += 1

    assert edits == 2
    after = await delivery_to(storage, story_id, MARKETS_CHANNEL)
    assert after.update_count == 2
    assert not after.update_pending
    assert (await storage.load_stories([story_id]))[story_id].revision == 4


# --- outbox ---------------------------------------------------------------------------------------


async def _three_pending(storage) -> tuple[list[int], list[int]]:
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    (ecb_id,) = await ingest(storage, reuters, [(ecb_story(), [markets_route(), editor_route()])])
    (quake_id,) = await ingest(storage, ap, [(quake_story(), [ukraine_route("Japan")])])
    ids = [d.id for d in await storage.deliveries_for_story(ecb_id)]
    ids += [d.id for d in await storage.deliveries_for_story(quake_id)]
    return ids, [ecb_id, ecb_id, quake_id]


async def test_due_deliveries_returns_pending_cards_in_id_order_with_their_story(storage):
    ids, story_ids = await _three_pending(storage)

    assert await storage.due_deliveries(NOW - timedelta(seconds=1), 10) == []
    due = await storage.due_deliveries(NOW, 10)

    assert [d.id for d, _ in due] == sorted(ids)
    assert [s.id for _, s in due] == story_ids
    assert [s.story.title for _, s in due] == [
        ecb_story().title,
        ecb_story().title,
        quake_story().title,
    ]
    assert all(d.status == DeliveryStatus.PENDING for d, _ in due)
    assert [d.id for d, _ in await storage.due_deliveries(NOW, 2)] == sorted(ids)[:2]


async def test_reschedule_pushes_the_next_attempt_and_counts_it(storage, raw):
    ids, _ = await _three_pending(storage)
    first = ids[0]

    await storage.reschedule(
        first, "HTTP 429 Too Many Requests", NOW + timedelta(seconds=30), update=False
    )

    assert first not in [d.id for d, _ in await storage.due_deliveries(NOW, 10)]
    due = {d.id: d for d, _ in await storage.due_deliveries(NOW + timedelta(seconds=30), 10)}
    assert due[first].attempts == 1
    assert due[first].status == DeliveryStatus.PENDING
    assert await raw.delivery_error(first) == "HTTP 429 Too Many Requests"
    await storage.reschedule(first, "HTTP 503", NOW + timedelta(minutes=2), update=False)
    due = {d.id: d for d, _ in await storage.due_deliveries(NOW + timedelta(minutes=2), 10)}
    assert due[first].attempts == 2


async def test_a_card_waiting_out_a_retry_holds_back_later_cards_to_the_same_channel(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    (ecb_id,) = await ingest(storage, reuters, [(ecb_story(), [markets_route()])])
    (quake_id,) = await ingest(storage, ap, [(quake_story(), [markets_route(), ukraine_route()])])
    first = await delivery_to(storage, ecb_id, MARKETS_CHANNEL)
    later = await delivery_to(storage, quake_id, MARKETS_CHANNEL)
    other = await delivery_to(storage, quake_id, UKRAINE_CHANNEL)

    await storage.reschedule(first.id, "HTTP 503", NOW + timedelta(seconds=30), update=False)

    # The channel reads its cards in order; another channel is not held up.
    assert [d.id for d, _ in await storage.due_deliveries(NOW, 10)] == [other.id]
    due = await storage.due_deliveries(NOW + timedelta(seconds=30), 10)
    assert [d.id for d, _ in due] == [first.id, later.id, other.id]


async def test_mark_sent_stores_the_message_id_and_takes_the_card_out_of_the_queue(storage):
    ids, story_ids = await _three_pending(storage)

    await storage.mark_sent(ids[0], "1349876543210987654", NOW + timedelta(seconds=2))

    (sent,) = [d for d in await storage.deliveries_for_story(story_ids[0]) if d.id == ids[0]]
    assert sent.status == DeliveryStatus.SENT
    assert sent.message_id == "1349876543210987654"
    assert ids[0] not in [
        d.id for d, _ in await storage.due_deliveries(NOW + timedelta(hours=1), 10)
    ]


async def test_mark_failed_stores_the_error_and_takes_the_card_out_of_the_queue(storage, raw):
    ids, story_ids = await _three_pending(storage)

    await storage.mark_failed(ids[1], "50007: Cannot send messages to this user", NOW)

    (failed,) = [d for d in await storage.deliveries_for_story(story_ids[1]) if d.id == ids[1]]
    assert failed.status == DeliveryStatus.FAILED
    assert failed.message_id is None
    assert await raw.delivery_error(ids[1]) == "50007: Cannot send messages to this user"
    assert ids[1] not in [
        d.id for d, _ in await storage.due_deliveries(NOW + timedelta(hours=1), 10)
    ]
    assert await storage.recent_sent_count(EDITOR_DM, NOW - timedelta(hours=1)) == 0


async def test_a_pending_update_is_due_until_marked_done(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    (story_id,) = await ingest(storage, feed, [(ecb_story(), [markets_route()])])
    delivery = await delivery_to(storage, story_id, MARKETS_CHANNEL)
    await storage.mark_sent(delivery.id, "1349876543210987654", NOW)
    at = NOW + timedelta(minutes=10)
    await revise(storage, feed, story_id, revised(ecb_story()), notify=True, now=at)

    for minutes in (0, 1):
        ((due, story),) = await storage.due_deliveries(at + timedelta(minutes=minutes), 10)
        assert (due.id, due.status, due.update_pending) == (delivery.id, DeliveryStatus.SENT, True)
        assert due.message_id == "1349876543210987654"
        assert story.revision == 1

    await storage.reschedule(delivery.id, "HTTP 502", at + timedelta(minutes=3), update=True)
    assert await storage.due_deliveries(at + timedelta(minutes=2), 10) == []
    ((retry, _),) = await storage.due_deliveries(at + timedelta(minutes=3), 10)
    assert retry.attempts == 1

    await storage.mark_update_done(delivery.id, at + timedelta(minutes=3))

    assert await storage.due_deliveries(at + timedelta(hours=1), 10) == []
    after = await delivery_to(storage, story_id, MARKETS_CHANNEL)
    assert (after.update_pending, after.update_count, after.attempts) == (False, 1, 0)
    assert after.status == DeliveryStatus.SENT


async def test_recent_sent_count_counts_cards_per_target_within_the_window(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    stories = [
        ecb_story(),
        bare_story(),
        Story(
            feed="Reuters World",
            title="Oil rises 2% after OPEC+ signals supply restraint",
            link="https://www.reuters.com/business/energy/oil-rises-opec-2025-03-14/",
        ),
    ]
    ids = await ingest(storage, reuters, [(s, [markets_route()]) for s in stories])
    (quake_id,) = await ingest(storage, ap, [(quake_story(), [ukraine_route("Japan")])])
    for story_id, seconds in zip(ids, (0, 30, 120), strict=True):
        delivery = await delivery_to(storage, story_id, MARKETS_CHANNEL)
        await storage.mark_sent(
            delivery.id,
            f"13498765432109876{seconds:02d}",
            NOW + timedelta(seconds=seconds),
            digest=seconds == 120,
        )
    quake = await delivery_to(storage, quake_id, UKRAINE_CHANNEL)
    await storage.mark_sent(quake.id, "1741944661.000200", NOW + timedelta(seconds=60))

    assert await storage.recent_sent_count(MARKETS_CHANNEL, NOW) == 3
    assert await storage.recent_sent_count(MARKETS_CHANNEL, NOW + timedelta(seconds=30)) == 2
    assert await storage.recent_sent_count(MARKETS_CHANNEL, NOW + timedelta(seconds=121)) == 0
    assert await storage.recent_sent_count(UKRAINE_CHANNEL, NOW) == 1
    assert await storage.recent_sent_count("discord:999999999999999999", NOW) == 0


async def test_delivery_counts_counts_cards_per_status(storage):
    assert await storage.delivery_counts() == {"pending": 0, "sent": 0, "failed": 0}
    ids, _ = await _three_pending(storage)
    await storage.mark_sent(ids[0], "1349876543210987654", NOW)
    await storage.mark_failed(ids[1], "403 Forbidden: missing access", NOW)

    assert await storage.delivery_counts() == {"pending": 1, "sent": 1, "failed": 1}


async def test_recent_for_subscriber_lists_what_was_delivered_to_a_person(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    (ecb_id,) = await ingest(storage, reuters, [(ecb_story(), [editor_route()])])
    (quake_id,) = await ingest(
        storage, ap, [(quake_story(), [editor_route("Japan")])], now=NOW + timedelta(minutes=5)
    )
    await ingest(storage, reuters, [(bare_story(), [markets_route("Airbus")])])

    stories = await storage.recent_for_subscriber("discord:284917365023981569", 10)

    assert [s.id for s in stories] == [quake_id, ecb_id]
    assert await storage.recent_for_subscriber("slack:U04ABCD1234", 10) == []


# --- watchlists and subscriptions ---------------------------------------------------------------


async def test_sync_config_watchlists_replaces_config_rows_and_leaves_chat_ones(storage):
    await storage.sync_config_watchlists(
        [
            ("Ukraine desk", "ukraine OR kyiv OR zelensky", [UKRAINE_CHANNEL]),
            ("Markets desk", 'ecb OR fed OR "rate cut"', [MARKETS_CHANNEL]),
        ],
        NOW,
    )
    elections = await storage.add_watchlist(
        "Elections", "election OR ballot", ["discord:1102938475610293847"], "slack:U04ABCD1234", NOW
    )

    await storage.sync_config_watchlists(
        [("Ukraine desk", "ukraine OR kyiv", [UKRAINE_CHANNEL, MARKETS_CHANNEL])], NOW
    )

    lists = {w.name: w for w in await storage.list_watchlists()}
    assert set(lists) == {"Ukraine desk", "Elections"}
    assert lists["Ukraine desk"].query == "ukraine OR kyiv"
    assert lists["Ukraine desk"].channels == (UKRAINE_CHANNEL, MARKETS_CHANNEL)
    assert lists["Ukraine desk"].origin == Origin.CONFIG
    assert lists["Elections"] == elections


async def test_a_chat_watchlist_can_be_added_edited_and_removed(storage):
    added = await storage.add_watchlist(
        "Elections", "election OR ballot", ["discord:1102938475610293847"], "slack:U04ABCD1234", NOW
    )
    assert (added.origin, added.created_by) == (Origin.CHAT, "slack:U04ABCD1234")
    assert added.channels == ("discord:1102938475610293847",)

    assert await storage.update_watchlist("Elections", query="election OR runoff", now=NOW)
    assert (await storage.get_watchlist("Elections")).channels == ("discord:1102938475610293847",)
    assert await storage.update_watchlist("Elections", channels=[UKRAINE_CHANNEL], now=NOW)
    edited = await storage.get_watchlist("Elections")
    assert (edited.query, edited.channels) == ("election OR runoff", (UKRAINE_CHANNEL,))

    assert await storage.remove_watchlist("Elections") is True
    assert await storage.get_watchlist("Elections") is None
    assert await storage.remove_watchlist("Elections") is False
    assert await storage.update_watchlist("Elections", query="x", now=NOW) is False


async def test_a_watchlists_pings_are_kept_as_the_file_and_chat_set_them(storage):
    await storage.sync_config_watchlists(
        [
            WatchlistSpec(
                "Ukraine desk",
                "ukraine",
                [UKRAINE_CHANNEL],
                ["role:1102938475610293001", "usergroup:S0UKRAINE"],
                PingWhen.ALWAYS,
            ),
            ("Markets desk", "ecb", [MARKETS_CHANNEL]),  # pings nobody
        ],
        NOW,
    )
    lists = {w.name: w for w in await storage.list_watchlists()}
    assert lists["Ukraine desk"].ping == ("role:1102938475610293001", "usergroup:S0UKRAINE")
    assert lists["Ukraine desk"].ping_when == PingWhen.ALWAYS
    assert (lists["Markets desk"].ping, lists["Markets desk"].ping_when) == ((), PingWhen.URGENT)

    # The file changed: its pings win, and a watchlist that drops them pings nobody.
    await storage.sync_config_watchlists([("Ukraine desk", "ukraine", [UKRAINE_CHANNEL])], NOW)
    desk = await storage.get_watchlist("UKRAINE DESK")
    assert (desk.ping, desk.ping_when) == ((), PingWhen.URGENT)

    await storage.add_watchlist("Elections", "election", [UKRAINE_CHANNEL], "slack:U1", NOW)
    assert (await storage.get_watchlist("Elections")).ping == ()
    assert await storage.update_watchlist("Elections", ping=["user:U0ANN"], now=NOW)
    assert await storage.update_watchlist("Elections", query="election OR ballot", now=NOW)
    edited = await storage.get_watchlist("Elections")
    assert (edited.ping, edited.ping_when) == (("user:U0ANN",), PingWhen.URGENT)
    assert await storage.update_watchlist("Elections", ping_when=PingWhen.ALWAYS, now=NOW)
    assert (await storage.get_watchlist("Elections")).ping_when == PingWhen.ALWAYS
    assert await storage.update_watchlist("Elections", ping=[], now=NOW)
    assert (await storage.get_watchlist("Elections")).ping == ()
    # The file's pings are the file's: chat cannot change them.
    assert await storage.update_watchlist("Ukraine desk", ping=["user:U0X"], now=NOW) is False


async def test_a_config_watchlist_cannot_be_edited_or_removed_from_chat(storage):
    await storage.sync_config_watchlists(
        [("Ukraine desk", "ukraine OR kyiv", [UKRAINE_CHANNEL])], NOW
    )
    before = await storage.get_watchlist("Ukraine desk")

    assert await storage.update_watchlist("Ukraine desk", query="russia", now=NOW) is False
    assert await storage.remove_watchlist("Ukraine desk") is False

    assert await storage.get_watchlist("Ukraine desk") == before


async def test_add_watchlist_refuses_a_taken_name_in_any_case(storage):
    await storage.sync_config_watchlists(
        [("Ukraine desk", "ukraine OR kyiv", [UKRAINE_CHANNEL])], NOW
    )

    with pytest.raises(DuplicateName):
        await storage.add_watchlist("UKRAINE DESK", "crimea", [MARKETS_CHANNEL], "slack:U1", NOW)

    assert [w.query for w in await storage.list_watchlists()] == ["ukraine OR kyiv"]


async def test_queries_version_moves_on_every_change(storage):
    versions = [storage.queries_version]

    async def changed() -> None:
        versions.append(storage.queries_version)
        assert versions[-1] > versions[-2]

    await storage.sync_config_watchlists([("Markets desk", "ecb", [MARKETS_CHANNEL])], NOW)
    await changed()
    await storage.add_watchlist("Elections", "election", [UKRAINE_CHANNEL], "slack:U1", NOW)
    await changed()
    await storage.update_watchlist("Elections", query="election OR ballot", now=NOW)
    await changed()
    await storage.remove_watchlist("Elections")
    await changed()
    await storage.add_subscription("discord:284917365023981569", "lagarde", NOW)
    await changed()
    await storage.remove_subscription("discord:284917365023981569", "lagarde")
    await changed()


async def test_subscriptions_are_added_once_listed_per_person_and_removed(storage):
    anna, ben = "discord:284917365023981569", "slack:U04ABCD1234"

    assert await storage.add_subscription(anna, "lagarde OR ecb", NOW) is True
    assert await storage.add_subscription(anna, "lagarde OR ecb", NOW) is False
    assert await storage.add_subscription(anna, "earthquake AND japan", NOW) is True
    assert await storage.add_subscription(ben, "lagarde OR ecb", NOW) is True

    assert [s.query for s in await storage.list_subscriptions(anna)] == [
        "lagarde OR ecb",
        "earthquake AND japan",
    ]
    assert [(s.subscriber, s.query) for s in await storage.list_subscriptions(ben)] == [
        (ben, "lagarde OR ecb")
    ]
    assert len(await storage.list_subscriptions()) == 3

    assert await storage.remove_subscription(anna, "lagarde OR ecb") is True
    assert await storage.remove_subscription(anna, "lagarde OR ecb") is False
    assert [s.query for s in await storage.list_subscriptions(anna)] == ["earthquake AND japan"]
    assert len(await storage.list_subscriptions(ben)) == 1


# --- reading stories ------------------------------------------------------------------------------


async def test_recent_stories_are_newest_first_within_the_window(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    (ecb_id,) = await ingest(storage, reuters, [(ecb_story(), [])], now=NOW - timedelta(hours=3))
    (quake_id,) = await ingest(storage, ap, [(quake_story(), [])], now=NOW - timedelta(hours=1))
    (airbus_id,) = await ingest(storage, reuters, [(bare_story(), [])], now=NOW)

    def ids(stories) -> list[int]:
        return [s.id for s in stories]

    assert ids(await storage.recent_stories(NOW - timedelta(hours=2))) == [airbus_id, quake_id]
    assert ids(await storage.recent_stories(NOW - timedelta(hours=4))) == [
        airbus_id,
        quake_id,
        ecb_id,
    ]
    assert ids(await storage.recent_stories(NOW - timedelta(hours=4), limit=2)) == [
        airbus_id,
        quake_id,
    ]
    assert ids(await storage.recent_stories(NOW - timedelta(hours=4), feed="reuters world")) == [
        airbus_id,
        ecb_id,
    ]
    first_page = await storage.recent_stories(NOW - timedelta(hours=4), limit=2)
    rest = await storage.recent_stories(NOW - timedelta(hours=4), limit=2, after=first_page[-1])
    assert ids(rest) == [ecb_id]
    assert await storage.recent_stories(NOW - timedelta(hours=4), after=rest[-1]) == []
    assert await storage.recent_stories(NOW + timedelta(seconds=1)) == []
    assert await storage.count_stories() == 3
    assert await storage.stories_per_feed(NOW - timedelta(hours=2)) == {reuters.id: 1, ap.id: 1}


# --- prune ----------------------------------------------------------------------------------------

RETENTION = {
    "stories": timedelta(days=30),
    "keys": timedelta(days=365),
    "window": timedelta(hours=48),
}


async def test_prune_deletes_old_stories_with_their_deliveries(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    (old_id,) = await ingest(
        storage,
        reuters,
        [(ecb_story(), [markets_route(), editor_route()])],
        now=NOW - timedelta(days=40),
    )
    old_sent = await delivery_to(storage, old_id, MARKETS_CHANNEL)
    await storage.mark_sent(old_sent.id, "1349876543210987654", NOW - timedelta(days=40))
    (new_id,) = await ingest(storage, ap, [(quake_story(), [ukraine_route("Japan")])])

    stories_gone, _ = await storage.prune(NOW, **RETENTION)

    assert stories_gone == 1
    assert list(await storage.load_stories([old_id, new_id])) == [new_id]
    assert await storage.deliveries_for_story(old_id) == []
    assert await storage.delivery_counts() == {"pending": 1, "sent": 0, "failed": 0}
    assert [s.id for _, s in await storage.due_deliveries(NOW, 10)] == [new_id]
    assert await storage.count_stories() == 1


async def test_permanent_keys_outlive_their_story_until_key_retention(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    story = ecb_story()
    (old_id,) = await ingest(storage, feed, [(story, [])], now=NOW - timedelta(days=40))
    strong = [k.value for k in strong_keys(story, feed.id, guid_unique=True)]

    await storage.prune(NOW, **RETENTION)

    assert await storage.load_stories([old_id]) == {}
    hits = await storage.find_keys(strong)
    assert {(h.kind, h.story_id) for h in hits} == {(KeyKind.GUID, old_id), (KeyKind.URL, old_id)}

    await storage.prune(NOW + timedelta(days=330), **RETENTION)

    assert await storage.find_keys(strong) == []


async def test_windowed_keys_are_dropped_once_outside_the_window(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    story = ecb_story()
    (story_id,) = await ingest(storage, feed, [(story, [])], now=NOW - timedelta(days=3))
    fuzzy = [k.value for k in fuzzy_keys(story)]
    strong = [k.value for k in strong_keys(story, feed.id, guid_unique=True)]
    assert fuzzy and await storage.find_keys(fuzzy)

    await storage.prune(NOW, **RETENTION)

    assert await storage.find_keys(fuzzy) == []
    assert {h.story_id for h in await storage.find_keys(strong)} == {story_id}
    assert list(await storage.load_stories([story_id])) == [story_id]


async def test_prune_keeps_everything_inside_its_retention(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    story = ecb_story()
    (story_id,) = await ingest(
        storage, feed, [(story, [markets_route()])], now=NOW - timedelta(hours=47)
    )

    assert await storage.prune(NOW, **RETENTION) == (0, 0)

    assert len(await storage.find_keys([k.value for k in identity_keys(story, feed)])) == len(
        identity_keys(story, feed)
    )
    assert len(await storage.deliveries_for_story(story_id)) == 1


# --- audit ----------------------------------------------------------------------------------------


async def test_audit_entries_come_back_newest_first_with_their_detail(storage):
    await storage.record_audit(
        "discord:284917365023981569",
        "feed.add",
        {"name": "Kyiv Independent", "url": KYIV.url},
        NOW,
    )
    await storage.record_audit(
        "slack:U04ABCD1234",
        "watchlist.update",
        {"name": "Elections", "query": "election OR вибори", "channels": [UKRAINE_CHANNEL]},
        NOW + timedelta(minutes=2),
    )

    entries = await storage.audit_entries()

    assert entries == [
        (
            NOW + timedelta(minutes=2),
            "slack:U04ABCD1234",
            "watchlist.update",
            {"name": "Elections", "query": "election OR вибори", "channels": [UKRAINE_CHANNEL]},
        ),
        (
            NOW,
            "discord:284917365023981569",
            "feed.add",
            {"name": "Kyiv Independent", "url": KYIV.url},
        ),
    ]
    assert [e[2] for e in await storage.audit_entries(limit=1)] == ["watchlist.update"]


# --- concurrency ----------------------------------------------------------------------------------


async def test_concurrent_writes_leave_a_consistent_database(storage):
    reuters, ap, kyiv = *(await config_feeds(storage, REUTERS, AP)), await chat_feed(storage)
    wire = [
        (
            Story(
                feed="Reuters World",
                title=f"Markets wrap: European shares close higher, day {n}",
                link=f"https://www.reuters.com/markets/europe/markets-wrap-2025-03-{n:02d}/",
                guid=f"tag:reuters.com,2025:newsml_WRAP{n:04d}",
            ),
            [markets_route("shares")],
        )
        for n in range(1, 51)
    ]
    wire_ids = await ingest(storage, reuters, wire)
    outbox = [await delivery_to(storage, i, MARKETS_CHANNEL) for i in wire_ids]

    later = NOW + timedelta(minutes=1)
    results = await asyncio.gather(
        *(storage.mark_sent(d.id, f"13498765432109{d.id:05d}", later) for d in outbox),
        ingest(
            storage,
            ap,
            [(quake_story(), [ukraine_route("Japan"), editor_route("Japan")])],
            now=later,
        ),
        ingest(storage, kyiv, [(kyiv_story(), [ukraine_route()])], now=later),
        storage.record_audit("slack:U04ABCD1234", "feed.poll", {"feed": "AP Top News"}, later),
    )
    (quake_id,), (kyiv_id,) = results[50], results[51]

    assert len({*wire_ids, quake_id, kyiv_id}) == 52
    for story_id, delivery in zip(wire_ids, outbox, strict=True):
        (row,) = await storage.deliveries_for_story(story_id)
        assert (row.id, row.status) == (delivery.id, DeliveryStatus.SENT)
        assert row.message_id == f"13498765432109{delivery.id:05d}"
    assert await storage.delivery_counts() == {"pending": 3, "sent": 50, "failed": 0}
    assert await storage.count_stories() == 52
    loaded = await storage.load_stories([quake_id, kyiv_id])
    assert loaded[quake_id].story == quake_story()
    assert loaded[kyiv_id].story == kyiv_story()
    assert await storage.delivery_targets([quake_id, kyiv_id]) == {
        quake_id: {UKRAINE_CHANNEL, EDITOR_DM},
        kyiv_id: {UKRAINE_CHANNEL},
    }
    for feed, story, story_id in ((ap, quake_story(), quake_id), (kyiv, kyiv_story(), kyiv_id)):
        keys = identity_keys(story, feed)
        assert {h.story_id for h in await storage.find_keys([k.value for k in keys])} == {story_id}
        assert (await storage.get_feed(feed.name)).baseline_done
    fresh = [
        *await storage.deliveries_for_story(quake_id),
        *await storage.deliveries_for_story(kyiv_id),
    ]
    assert [d.id for d, _ in await storage.due_deliveries(later, 100)] == sorted(
        d.id for d in fresh
    )
    assert len(await storage.audit_entries()) == 1


# --- known defects --------------------------------------------------------------------------------


async def test_story_ids_are_not_reused_after_every_story_is_pruned(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    old = ecb_story()
    (old_id,) = await ingest(
        storage, feed, [(old, [markets_route()])], now=NOW - timedelta(days=40)
    )
    await storage.prune(NOW, **RETENTION)

    (new_id,) = await ingest(storage, feed, [(bare_story(), [markets_route("Airbus")])])

    hits = await storage.find_keys([k.value for k in strong_keys(old, feed.id, guid_unique=True)])
    assert {h.story_id for h in hits} == {old_id}
    # The pruned story's keys must not lead to the new story.
    assert new_id != old_id
    assert await storage.load_stories([h.story_id for h in hits]) == {}


async def test_a_revision_made_while_a_card_is_being_sent_is_not_lost(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    (story_id,) = await ingest(storage, feed, [(ecb_story(), [markets_route()])])
    ((in_flight, read),) = await storage.due_deliveries(NOW, 10)
    assert read.revision == 0

    later = NOW + timedelta(seconds=5)
    await revise(storage, feed, story_id, revised(ecb_story()), notify=True, now=later)
    await storage.mark_sent(in_flight.id, "1349876543210987654", later, revision=read.revision)

    due = await storage.due_deliveries(later + timedelta(minutes=1), 10)
    assert [(d.id, s.revision) for d, s in due] == [(in_flight.id, 1)]


async def test_a_revision_made_while_a_card_is_being_edited_is_not_lost(storage):
    (feed,) = await config_feeds(storage, REUTERS)
    (story_id,) = await ingest(storage, feed, [(ecb_story(), [markets_route()])])
    delivery = await delivery_to(storage, story_id, MARKETS_CHANNEL)
    await storage.mark_sent(delivery.id, "1349876543210987654", NOW)
    first = NOW + timedelta(minutes=10)
    await revise(storage, feed, story_id, revised(ecb_story()), notify=True, now=first)
    ((editing, read),) = await storage.due_deliveries(first, 10)
    assert read.revision == 1

    second = first + timedelta(seconds=5)
    newer = replace(revised(ecb_story()), title="ECB holds rates; Lagarde: April cut 'very likely'")
    await revise(storage, feed, story_id, newer, notify=True, now=second)
    await storage.mark_update_done(editing.id, second, revision=read.revision)

    due = await storage.due_deliveries(second + timedelta(minutes=1), 10)
    assert [(d.id, s.revision) for d, s in due] == [(delivery.id, 2)]


async def test_a_new_feed_does_not_inherit_the_identity_keys_of_a_removed_one(storage):
    await config_feeds(storage, REUTERS)
    kyiv = await chat_feed(storage)
    old = replace(kyiv_story(), guid="198234")
    (old_id,) = await ingest(storage, kyiv, [(old, [ukraine_route()])])
    assert await storage.remove_feed("Kyiv Independent")

    meduza = await storage.add_feed(
        FeedSpec("Meduza", "https://meduza.io/rss/en/all", timedelta(minutes=10), Origin.CHAT),
        "slack:U04ABCD1234",
        NOW,
    )
    fresh = Story(
        feed="Meduza",
        title="Russian court jails journalist for seven years over Telegram posts",
        link="https://meduza.io/en/news/2025/03/14/russian-court-jails-journalist",
        guid="198234",
    )

    hits = await storage.find_keys(
        [k.value for k in strong_keys(fresh, meduza.id, guid_unique=True)]
    )
    assert old_id not in {h.story_id for h in hits}
    assert meduza.id != kyiv.id
