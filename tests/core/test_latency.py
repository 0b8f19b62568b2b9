"""The latency rules (bot.core.latency) against hostile publish dates, the planner's record of
which feeds carry a story, the per-feed metrics and their bounded labels, and /feed list on
both platforms with 200 feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.chat.discord.render import CONTENT_LIMIT
from bot.chat.discord.render import render_reply as discord_reply
from bot.chat.slack.render import TEXT_LIMIT
from bot.chat.slack.render import render_reply as slack_reply
from bot.core.commands import Commands
from bot.core.identity import identify
from bot.core.latency import (
    CLOCK_SKEW,
    MAX_CREDIBLE_AGE,
    Lead,
    SourceSighting,
    credible_published,
    delay_from_published,
    feed_line,
    first_and_lead,
    stamped_times,
    summarise,
)
from bot.core.models import Delivery, DeliveryStatus, FeedSpec, Origin, StoredStory, Story
from bot.core.pipeline import PollReport, PollStatus, _sightings
from bot.core.plan import IngestSettings, plan_ingest
from bot.core.replies import Actor
from bot.ops import Metrics
from storage.memory import MemoryStorage
from tests.core.fakes import Clock
from tests.core.test_commands_unit import Services
from tests.core.test_plan import AGENCY, BOOK, WIRE, held, story

SEEN = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ADMIN = Actor("discord", "42", "editor", is_admin=True)


# --- when a publish time is credible ------------------------------------------------------------


def test_hostile_publish_dates_are_not_credible():
    assert credible_published(None, SEEN) is None
    # A date in the future of our first sight: a feed dating ahead, a server clock running fast.
    assert credible_published(SEEN + CLOCK_SKEW + timedelta(seconds=1), SEEN) is None
    assert credible_published(datetime(2099, 1, 1, tzinfo=UTC), SEEN) is None
    # Implausibly old: a 2009 date, the epoch, a day and a second before we saw it.
    assert credible_published(datetime(2009, 1, 1, tzinfo=UTC), SEEN) is None
    assert credible_published(datetime(1970, 1, 1, tzinfo=UTC), SEEN) is None
    assert credible_published(SEEN - MAX_CREDIBLE_AGE - timedelta(seconds=1), SEEN) is None
    # A time the document gave to several items is a stamp, whatever it says.
    assert credible_published(SEEN - timedelta(seconds=30), SEEN, stamped=True) is None


def test_plausible_publish_dates_are_measured_from():
    assert credible_published(SEEN - MAX_CREDIBLE_AGE, SEEN) == SEEN - MAX_CREDIBLE_AGE
    at = SEEN + timedelta(seconds=2)
    assert delay_from_published(SEEN - timedelta(seconds=40), SEEN, at) == 42
    # A little ahead (within the skew): published when first seen, never a negative delay.
    assert delay_from_published(SEEN + timedelta(seconds=30), SEEN, at) == 2


def test_a_time_several_items_share_is_a_stamp():
    fetched = SEEN - timedelta(seconds=1)
    items = [
        Story("W", "a", published=fetched),
        Story("W", "b", published=fetched),
        Story("W", "c", published=SEEN - timedelta(minutes=7)),
        Story("W", "d"),
        Story("W", "e"),
    ]
    assert stamped_times(items) == {fetched}
    assert stamped_times(items[2:]) == frozenset()


def test_who_was_first_leaves_baseline_sightings_out():
    a = SourceSighting(1, "A", SEEN, False)
    b = SourceSighting(2, "B", SEEN + timedelta(seconds=95), False)
    c = SourceSighting(3, "C", SEEN - timedelta(hours=1), True)  # C's baseline: when we started
    assert first_and_lead([b, a, c]) == (a, b, 95)
    assert first_and_lead([b, c]) is None
    assert first_and_lead([a]) is None


def test_summary_words_each_feed():
    shared = {
        1: [
            SourceSighting(1, "A", SEEN, False),
            SourceSighting(2, "B", SEEN + timedelta(seconds=42), False),
        ],
        2: [
            SourceSighting(2, "B", SEEN, False),
            SourceSighting(1, "A", SEEN + timedelta(seconds=5), False),
        ],
        3: [
            SourceSighting(1, "A", SEEN, False),
            SourceSighting(2, "B", SEEN + timedelta(minutes=3), False),
        ],
    }
    summary = summarise([], shared)
    assert feed_line(summary.per_feed[1]) == "first on 2 of 3 shared stories (median lead 111 s)"
    assert feed_line(summary.per_feed[2]) == "first on 1 of 3 shared stories (median lead 5.0 s)"
    assert feed_line(None) == "no cards or shared stories in 7 days"


# --- the planner records the feeds that carry a story -------------------------------------------


def planned(feed, items, known=(), sources=None):
    identity = identify(items)
    sightings = _sightings(feed, items, identity)
    hits = [h for k in known for h in held(k, SEEN - timedelta(minutes=2))]
    return plan_ingest(
        feed,
        sightings,
        hits,
        {k.id: k for k in known},
        BOOK,
        IngestSettings(),
        SEEN,
        {k.id: {"toy:desk"} for k in known},
        carriers=sources,
    )


def test_a_second_feed_makes_a_story_shared_once():
    first = story(1, published=SEEN - timedelta(minutes=3))
    known = StoredStory(7, WIRE.id, first, SEEN - timedelta(minutes=2), 0, True)
    again = story(1, feed=AGENCY, published=SEEN)
    again = Story(**{**_fields(again), "link": first.link})  # the same article, another feed
    plan = planned(AGENCY, [again], [known])
    assert [(p.story_ref, p.baseline) for p in plan.carriers] == [(7, False)]
    assert plan.leads == [Lead("Wire", "Agency", 120.0)]
    batch = plan.ingest_batch()
    assert [(r.story.value, r.feed_id, r.feed_name) for r in batch.carriers] == [
        (7, AGENCY.id, "Agency")
    ]
    # Already recorded for this feed: nothing to write, no second lead.
    recorded = {
        7: [
            SourceSighting(WIRE.id, "Wire", SEEN - timedelta(minutes=2), False),
            SourceSighting(AGENCY.id, "Agency", SEEN - timedelta(minutes=1), False),
        ]
    }
    plan = planned(AGENCY, [again], [known], recorded)
    assert plan.carriers == [] and plan.leads == []
    # A third feed carries it later: recorded, but the story was already shared.
    third = type(AGENCY)(**{**_fields(AGENCY), "id": 3, "name": "Third"})
    plan = planned(third, [again], [known], recorded)
    assert [p.story_ref for p in plan.carriers] == [7] and plan.leads == []


def test_a_baseline_sighting_is_recorded_as_such_and_compares_nothing():
    first = story(1)
    known = StoredStory(7, WIRE.id, first, SEEN - timedelta(minutes=2), 0, True)
    fresh = type(AGENCY)(**{**_fields(AGENCY), "baseline_done": False})
    again = Story(**{**_fields(story(1, feed=AGENCY)), "link": first.link})
    plan = planned(fresh, [again], [known])
    assert [(p.story_ref, p.baseline) for p in plan.carriers] == [(7, True)]
    assert plan.leads == []


def test_new_stories_of_a_stamping_document_are_marked():
    stamp = SEEN - timedelta(seconds=1)
    items = [
        story(1, "Flood warning for York", published=stamp),
        story(2, "Wildfire near Leeds", published=stamp),
        story(3, "Flood barrier fails", published=SEEN - timedelta(minutes=9)),
    ]
    plan = planned(WIRE, items)
    assert [n.stamped for n in plan.new_stories] == [True, True, False]
    assert [r.stamped for r in plan.ingest_batch().new_stories] == [True, True, False]
    assert [(p.story_ref, p.baseline) for p in plan.carriers] == [
        (-1, False),
        (-2, False),
        (-3, False),
    ]


def _fields(value):
    return {name: getattr(value, name) for name in value.__slots__}


# --- the metrics: per feed, and only for feeds that exist ---------------------------------------


def test_per_feed_series_of_a_removed_feed_are_dropped():
    metrics = Metrics()
    card = Delivery(1, 1, "toy:desk", ("Desk",), None, (), DeliveryStatus.SENT)
    for feed, published in (("Gone", SEEN - timedelta(seconds=30)), ("Kept", None)):
        metrics.poll(PollReport(feed, PollStatus.NEW, leads=(Lead(feed, "Other", 9.0),)))
        stored = StoredStory(1, 1, Story(feed, "t", published=published), SEEN, 0, True)
        metrics.delivered(card, stored, SEEN + timedelta(seconds=1))
    text = metrics.render().decode()
    assert 'newsbot_feed_alert_delay_from_published_seconds_count{feed="Gone"} 1.0' in text
    assert 'newsbot_first_source_total{feed="Gone"} 1.0' in text
    metrics.keep_feeds(["Kept"])
    text = metrics.render().decode()
    assert 'feed="Gone"' not in text
    assert 'newsbot_feed_alert_delay_from_first_seen_seconds_count{feed="Kept"} 1.0' in text
    assert 'newsbot_first_source_total{feed="Kept"} 1.0' in text
    # The overall histograms keep everything they saw.
    assert "newsbot_alert_delay_from_first_seen_seconds_count 2.0" in text


# --- /feed list with 200 feeds, on both platforms -----------------------------------------------


async def test_feed_list_of_200_feeds_pages_within_both_platforms_limits():
    store = MemoryStorage()
    specs = [
        FeedSpec(
            f"Regional wire {n:03d} *bold* <@everyone>",
            f"https://w{n}.example/rss",
            timedelta(minutes=2),
            Origin.CONFIG,
        )
        for n in range(200)
    ]
    await store.sync_config_feeds(specs, SEEN)
    clock = Clock(SEEN)
    commands = Commands(store, Services(store, clock), clock=clock)
    first = await commands.feed_list(ADMIN)
    assert first.ok and "200 feeds, page 1 of " in first.text and "ask for page 2" in first.text
    pages = int(first.text.split(" of ")[1].split(" ")[0])
    shown = []
    for number in range(1, pages + 1):
        reply = await commands.feed_list(ADMIN, number)
        shown += [item.text for item in reply.items]
        text = discord_reply(reply)
        assert len(text) <= CONTENT_LIMIT and "more" not in text.split("\n")[-1]
        body = slack_reply(reply)
        assert all(len(block["text"]["text"]) <= TEXT_LIMIT for block in body["blocks"])
        assert len(body["blocks"]) <= 50
    assert shown == [s.name for s in specs]  # every feed on exactly one page
    for wrong in (pages + 1, 0, -1):
        beyond = await commands.feed_list(ADMIN, wrong)
        assert not beyond.ok and f"There are {pages} pages" in beyond.text
    await store.close()
