"""The planner's decisions (bot.core.plan.plan_ingest), on plain values: what is new, what is an
update, what was seen, and who gets a card.

Sightings are built the way the pipeline builds them (`identify` over the whole document, then
`pipeline._sightings`); what the database knows is handed in as the KeyHits a store would
return for the sightings' keys, with the stored stories and the destinations that have a card."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from bot.core import identity
from bot.core.identity import (
    KeyKind,
    fuzzy_keys,
    identify,
    material_change,
    same_story,
    strong_keys,
)
from bot.core.models import (
    HELD_BASELINE,
    HELD_OLD,
    FeedSpec,
    FeedState,
    Origin,
    StoredStory,
    Story,
    Subscription,
    Watchlist,
)
from bot.core.pipeline import Pipeline, PollReport, _sightings
from bot.core.plan import MAX_VERIFIED, IngestPlan, IngestSettings, plan_ingest
from bot.core.ports import KeyHit, PollOutcome
from bot.core.routing import QueryBook
from storage.memory import MemoryStorage
from tests.core.fakes import NOW

WIRE = FeedState(
    1, "Wire", "https://wire.example/rss", timedelta(minutes=2), Origin.CONFIG, baseline_done=True
)
AGENCY = FeedState(
    2,
    "Agency",
    "https://agency.example/rss",
    timedelta(minutes=2),
    Origin.CONFIG,
    baseline_done=True,
)

BOOK = QueryBook(
    [
        Watchlist(1, "Floods", "flood", ("toy:desk", "toy:rivers"), Origin.CONFIG),
        Watchlist(2, "Fires", "wildfire", ("toy:fire",), Origin.CONFIG),
        Watchlist(3, "Failures", "fails", ("toy:engineering",), Origin.CHAT),
    ],
    [Subscription(1, "toy:rita", "York")],
)
FLOOD_TARGETS = ["toy:desk", "toy:rivers", "toy:dm:rita"]

HEADLINE = "Flood barrier raised in York overnight"
LEAD = "The Foss barrier closed before dawn as the river rose two metres in a single day."


def story(
    n: int | str,
    title: str = HEADLINE,
    lead: str = LEAD,
    *,
    feed: FeedState = WIRE,
    published: datetime | None = NOW - timedelta(minutes=5),
) -> Story:
    host = feed.name.lower()
    return Story(
        feed=feed.name,
        title=title,
        link=f"https://{host}.example/{n}",
        guid=f"{host}-{n}",
        summary=lead,
        content=lead,
        published=published,
    )


def stored(story_id: int, item: Story, *, feed: FeedState = WIRE, alertable: bool = True):
    return StoredStory(story_id, feed.id, item, NOW - timedelta(hours=1), 0, alertable)


def held(known: StoredStory, seen: datetime) -> list[KeyHit]:
    """Every key a store holds for a story it recorded: its GUID and link (for good), its
    headline and MinHash bands (within the de-duplication window)."""
    keys = strong_keys(known.story, known.feed_id or 0, guid_unique=True) + fuzzy_keys(known.story)
    return [KeyHit(k.value, k.kind, known.id, seen) for k in keys]


def plan(
    feed: FeedState,
    items: Sequence[Story],
    *,
    known: Sequence[StoredStory] = (),
    targets: dict[int, set[str]] | None = None,
    settings: IngestSettings | None = None,
    book: QueryBook = BOOK,
    seen: datetime = NOW - timedelta(hours=1),
    hits: Sequence[KeyHit] | None = None,
) -> IngestPlan:
    """One document through the planner, as the pipeline calls it."""
    identity = identify(items)
    sightings = _sightings(feed, items, identity)
    if hits is None:
        hits = [hit for k in known for hit in held(k, seen)]
    asked = {k.value for s in sightings for k in (*s.strong, *s.fuzzy)}
    return plan_ingest(
        feed,
        sightings,
        [h for h in hits if h.key in asked],  # a store answers only what it is asked
        {k.id: k for k in known},
        book,
        settings or IngestSettings(),
        NOW,
        targets or {},
        identity.ignore,
    )


def alerted(result: IngestPlan) -> list[str]:
    """The destinations owed a new card, in plan order."""
    return [d.route.target for d in result.deliveries if not d.refresh]


# --- new stories ---------------------------------------------------------------------------------


def test_a_new_story_in_a_baselined_feed_alerts_every_matching_destination() -> None:
    result = plan(WIRE, [story(1)])

    [new] = result.new_stories
    assert new.alertable and new.story.title == HEADLINE
    assert alerted(result) == FLOOD_TARGETS  # not toy:fire, not toy:engineering
    routes = {d.route.target: d.route for d in result.deliveries}
    assert routes["toy:desk"].watchlists == ("Floods",)
    assert routes["toy:desk"].matched == ("Flood",)
    assert routes["toy:dm:rita"].subscriber == "toy:rita"
    assert routes["toy:dm:rita"].matched == ("York",)
    assert {d.story_ref for d in result.deliveries} == {new.ref}
    assert result.alerts == 3 and result.seen == 0
    # Its GUID and link are recorded for good, against the story the plan creates.
    kinds = {k.key.kind for k in result.keys if k.story_ref == new.ref}
    assert {KeyKind.GUID, KeyKind.URL} <= kinds


def test_two_watchlists_posting_to_one_channel_give_it_one_card_naming_both() -> None:
    book = QueryBook(
        [
            Watchlist(1, "Floods", "flood", ("toy:desk",), Origin.CONFIG),
            Watchlist(2, "Yorkshire", "York OR Leeds", ("toy:desk",), Origin.CONFIG),
        ],
        [],
    )
    result = plan(WIRE, [story(1)], book=book)
    [delivery] = result.deliveries
    assert delivery.route.target == "toy:desk"
    assert delivery.route.watchlists == ("Floods", "Yorkshire")
    assert delivery.route.matched == ("Flood", "York")


def test_a_story_that_matches_nothing_is_recorded_and_alerts_nobody() -> None:
    result = plan(WIRE, [story(1, "Council approves new cycle lanes", "Work starts in May.")])
    assert [n.story.title for n in result.new_stories] == ["Council approves new cycle lanes"]
    assert result.deliveries == []


def test_the_first_poll_of_a_feed_records_its_stories_and_alerts_nobody() -> None:
    first = replace(WIRE, baseline_done=False)
    items = [story(n, f"Flood warning number {n} for York", LEAD) for n in range(3)]

    result = plan(first, items)

    assert [n.story.title for n in result.new_stories] == [s.title for s in items]
    assert not any(n.alertable for n in result.new_stories)
    # Why, kept with each story for /why.
    assert {n.held for n in result.new_stories} == {HELD_BASELINE}
    assert {r.held for r in result.ingest_batch().new_stories} == {HELD_BASELINE}
    assert result.deliveries == [] and result.alerts == 0
    # Recorded all the same: the next poll knows every one of them.
    assert {k.story_ref for k in result.keys} == {n.ref for n in result.new_stories}


@pytest.mark.parametrize(
    ("age", "max_age", "alerts"),
    [
        (timedelta(hours=23), timedelta(hours=24), True),
        (timedelta(hours=25), timedelta(hours=24), False),
        (timedelta(days=30), timedelta(hours=24), False),
        (timedelta(hours=3), timedelta(hours=2), False),
        (timedelta(minutes=90), timedelta(hours=2), True),
    ],
    ids=["23h-of-24h", "25h-of-24h", "30d-of-24h", "3h-of-2h", "90m-of-2h"],
)
def test_a_story_older_than_max_age_is_recorded_without_alerting(
    age: timedelta, max_age: timedelta, alerts: bool
) -> None:
    result = plan(WIRE, [story(1, published=NOW - age)], settings=IngestSettings(max_age=max_age))
    [new] = result.new_stories  # recorded either way: it must not alert on a later poll
    assert new.alertable is alerts
    assert new.held == ("" if alerts else HELD_OLD)
    assert alerted(result) == (FLOOD_TARGETS if alerts else [])


@pytest.mark.parametrize(
    "published",
    [None, NOW + timedelta(hours=5), NOW + timedelta(days=400)],
    ids=["undated", "dated-5h-ahead", "dated-next-year"],
)
def test_an_undated_or_future_dated_story_counts_as_new(published: datetime | None) -> None:
    # Even with a tiny max_age: a date in the future is a publisher's mistake, not old news.
    result = plan(
        WIRE, [story(1, published=published)], settings=IngestSettings(max_age=timedelta(1))
    )
    assert [n.alertable for n in result.new_stories] == [True]
    assert alerted(result) == FLOOD_TARGETS


# --- known stories -------------------------------------------------------------------------------


def test_the_same_guid_seen_again_is_seen_not_new() -> None:
    known = stored(7, story(1))
    result = plan(WIRE, [story(1)], known=[known], targets={7: set(FLOOD_TARGETS)})
    assert result.seen == 1
    assert result.new_stories == [] and result.revisions == [] and result.deliveries == []


def test_a_known_guid_under_a_new_link_moves_the_cards_and_alerts_nobody() -> None:
    known = stored(7, story(1))
    moved = replace(story(1), link="https://wire.example/2026/03/02/york-flood-barrier")
    result = plan(WIRE, [moved], known=[known], targets={7: set(FLOOD_TARGETS)})
    assert result.new_stories == []
    assert alerted(result) == []  # a new address is no reason to alert again...
    # ...but the cards are edited to point at it: the old one is no longer listed.
    [revision] = result.revisions
    assert (revision.story_id, revision.notify, revision.story.link) == (7, True, moved.link)


def test_a_changed_headline_of_a_known_story_is_a_revision_that_notifies() -> None:
    known = stored(7, story(1))
    rewritten = story(1, "Flood barrier fails in York as the river peaks")

    result = plan(WIRE, [rewritten], known=[known], targets={7: set(FLOOD_TARGETS)})

    [revision] = result.revisions
    assert (revision.story_id, revision.notify, revision.alertable) == (7, True, True)
    assert revision.story.title == rewritten.title
    assert result.new_stories == [] and result.seen == 0
    # The cards already sent are refreshed (and edited); the one destination the new headline
    # newly matches gets a card of its own.
    refreshed = [d.route.target for d in result.deliveries if d.refresh]
    assert sorted(refreshed) == sorted(FLOOD_TARGETS)
    assert alerted(result) == ["toy:engineering"]
    assert {d.story_ref for d in result.deliveries} == {7}


def test_a_rewritten_lead_is_a_revision_that_notifies() -> None:
    known = stored(7, story(1))
    other_lead = "Engineers say the barrier will stay shut until Thursday at the earliest."
    assert material_change(known.story, story(1, lead=other_lead))
    result = plan(WIRE, [story(1, lead=other_lead)], known=[known], targets={7: {"toy:desk"}})
    assert [(r.story_id, r.notify) for r in result.revisions] == [(7, True)]
    assert result.revisions[0].story.summary == other_lead


def test_a_lead_that_only_grew_is_kept_but_notifies_nobody() -> None:
    short = stored(7, story(1, lead="The Foss barrier closed before dawn."))
    whole = story(1, lead="The Foss barrier closed before dawn. Residents were told to move cars.")
    assert not material_change(short.story, whole)

    result = plan(WIRE, [whole], known=[short], targets={7: set(FLOOD_TARGETS)})

    [revision] = result.revisions
    assert (revision.story_id, revision.notify) == (7, False)
    assert revision.story.summary == whole.summary  # the better text is kept
    assert result.deliveries == []


async def test_a_story_past_the_update_cap_stops_editing_its_cards() -> None:
    """The planner marks every headline change as a revision and hands `max_updates` to the
    store with its rows; the store stops flagging the sent card for edits at the cap. Through
    the pipeline's ingest on the in-memory backend (no fetching: the stories are handed in)."""
    store = MemoryStorage()
    await store.add_feed(
        FeedSpec("Wire", WIRE.url, WIRE.interval, Origin.CONFIG), "test", NOW - timedelta(hours=1)
    )
    pipeline = Pipeline(
        store,
        reader=None,  # ingest() never fetches
        queries=lambda: _book(),
        settings=IngestSettings(max_updates=2),
        clock=lambda: NOW,
    )

    async def poll(item: Story) -> PollReport:
        feed = await store.get_feed("Wire")
        assert feed is not None
        return await pipeline.ingest(feed, [item], PollOutcome(ok=True))

    await poll(story("baseline", "Council approves new cycle lanes", "Work starts in May."))
    await poll(story(1, "Flood barrier raised in York"))
    [(card, _)] = await store.due_deliveries(NOW, 10)
    await store.mark_sent(card.id, "m-1", NOW, revision=0)

    edits = []
    for headline in [
        "Flood barrier fails in York",
        "Flood barrier repaired in York",
        "Flood barrier fails again in York",
    ]:
        report = await poll(story(1, headline))
        assert report.updated == 1  # the planner calls it a revision
        due = [(d, s) for d, s in await store.due_deliveries(NOW, 10) if d.id == card.id]
        edits.append([s.story.title for _, s in due])
        for delivery, current in due:
            await store.mark_update_done(delivery.id, NOW, revision=current.revision)
    assert edits == [["Flood barrier fails in York"], ["Flood barrier repaired in York"], []]


async def test_only_the_prints_of_stories_a_poll_may_store_are_kept_for_later_checks() -> None:
    """The writing process keeps recent stories' prints: near-duplicate candidates are stored
    stories. Items the store already holds by GUID or link (most of a changed document) are
    nobody's new candidate; after a restart they filled the kept prints (some 30 MB)."""
    store = MemoryStorage()
    await store.add_feed(
        FeedSpec("Wire", WIRE.url, WIRE.interval, Origin.CONFIG), "test", NOW - timedelta(hours=1)
    )
    pipeline = Pipeline(store, reader=None, queries=lambda: _book(), clock=lambda: NOW)
    known = [story(n, f"Council votes on plan number {n} for the ring road") for n in range(5)]
    feed = await store.get_feed("Wire")
    assert feed is not None
    await pipeline.ingest(feed, known, PollOutcome(ok=True))
    assert all((s.title, s.summary) in identity._PRINTS for s in known)

    fresh = story(9, "Flood barrier raised in Selby overnight", "Water rose in the Ouse.")
    document = [fresh, *known]
    made = identify(document)  # by a parse worker: another process
    identity._PRINTS.clear()  # and this one as after a restart
    feed = await store.get_feed("Wire")
    assert feed is not None
    report = await pipeline.ingest(feed, document, PollOutcome(ok=True), made)
    assert report.new == 1
    assert (fresh.title, fresh.summary) in identity._PRINTS
    assert not any((s.title, s.summary) in identity._PRINTS for s in known)


async def _book() -> QueryBook:
    return QueryBook([Watchlist(1, "Floods", "flood", ("toy:desk",), Origin.CONFIG)], [])


# --- the same story from elsewhere ---------------------------------------------------------------


def agency_story() -> StoredStory:
    return stored(7, story(1, feed=AGENCY), feed=AGENCY)


def reworded() -> Story:
    return story(5, "York flood barrier raised overnight")


def test_a_near_duplicate_from_another_feed_alerts_only_destinations_without_a_card() -> None:
    known = agency_story()
    assert same_story(known.story, reworded())  # the premise: one story in two wordings

    result = plan(WIRE, [reworded()], known=[known], targets={7: {"toy:desk"}})

    assert result.new_stories == []
    assert alerted(result) == ["toy:rivers", "toy:dm:rita"]  # toy:desk has its card
    assert {d.story_ref for d in result.deliveries} == {7}
    # Another publisher's wording is no update of the card the desk already has.
    assert result.revisions == []
    # Its own GUID and link now lead to the known story too.
    assert {k.key.kind for k in result.keys if k.story_ref == 7} >= {KeyKind.GUID, KeyKind.URL}


def test_another_feeds_duplicate_is_kept_for_why_the_first_time_only() -> None:
    known = agency_story()

    first = plan(WIRE, [reworded()], known=[known], targets={7: set(FLOOD_TARGETS)})
    # The next poll lists it again: its GUID and link now lead to the story, nothing is new.
    again = plan(
        WIRE,
        [reworded()],
        known=[known],
        targets={7: set(FLOOD_TARGETS)},
        hits=[
            *held(known, NOW - timedelta(hours=1)),
            *(KeyHit(k.key.value, k.key.kind, 7, NOW) for k in first.keys),
        ],
    )
    # The story's own feed listing it under a new link is the same article, not a duplicate.
    own = plan(AGENCY, [story(9, feed=AGENCY)], known=[known], targets={7: set(FLOOD_TARGETS)})

    assert [(r.story_id, r.feed, r.title, r.link) for r in first.sightings] == [
        (7, "Wire", "York flood barrier raised overnight", "https://wire.example/5")
    ]
    assert first.ingest_batch().sightings == first.sightings
    assert again.sightings == [] and again.seen == 1
    assert own.sightings == []


def test_a_near_duplicate_whose_destinations_all_have_cards_is_seen() -> None:
    result = plan(WIRE, [reworded()], known=[agency_story()], targets={7: set(FLOOD_TARGETS)})
    assert result.deliveries == [] and result.new_stories == [] and result.seen == 1


def test_a_near_duplicate_outside_the_window_is_a_new_story() -> None:
    result = plan(WIRE, [reworded()], known=[agency_story()], seen=NOW - timedelta(hours=49))
    assert [n.story.title for n in result.new_stories] == [reworded().title]
    assert alerted(result) == FLOOD_TARGETS


# --- inside one document -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "second",
    [story(1), replace(story(1), guid="wire-1-again")],
    ids=["the-same-item-twice", "one-link-under-two-guids"],
)
def test_a_duplicate_item_inside_one_document_is_one_story(second: Story) -> None:
    result = plan(WIRE, [story(1), second])
    assert len(result.new_stories) == 1
    assert alerted(result) == FLOOD_TARGETS  # one card each, not two


def test_co_listed_items_are_never_merged_by_near_duplicate_matching() -> None:
    first, second = story(1), reworded()
    assert same_story(first, second)  # apart, these would be one story

    result = plan(WIRE, [first, second])

    assert [n.story.title for n in result.new_stories] == [first.title, second.title]
    assert [d.route.target for d in result.deliveries] == FLOOD_TARGETS * 2


def test_an_item_near_a_stored_story_its_document_still_lists_is_a_story_of_its_own() -> None:
    known = stored(7, story(1))
    sibling = replace(reworded(), feed="Wire")
    # Alone, the reworded item would be taken for the stored story with a new headline.
    alone = plan(WIRE, [sibling], known=[known], targets={7: set(FLOOD_TARGETS)})
    assert alone.new_stories == [] and [r.story_id for r in alone.revisions] == [7]

    # Listed beside it, it is another story: a publisher does not list one story twice.
    both = plan(WIRE, [story(1), sibling], known=[known], targets={7: set(FLOOD_TARGETS)})
    assert [n.story.title for n in both.new_stories] == [sibling.title]
    assert both.revisions == [] and both.seen == 1


# --- bounded work --------------------------------------------------------------------------------


def decoys(count: int) -> list[StoredStory]:
    """Stored stories of other subjects (the store says they share bands with a sighting)."""
    return [
        stored(
            100 + n,
            story(
                f"d{n}",
                f"Quarterly results for retailer number {n} beat forecasts",
                f"Retailer {n} said sales of garden furniture rose {n} percent in spring.",
                feed=AGENCY,
            ),
            feed=AGENCY,
        )
        for n in range(count)
    ]


def band_hits(item: Story, story_ids: Sequence[int]) -> list[KeyHit]:
    bands = [k for k in fuzzy_keys(item) if k.kind == KeyKind.SHINGLE]
    assert bands
    return [KeyHit(k.value, k.kind, sid, NOW) for sid in story_ids for k in bands]


def test_at_most_max_verified_candidates_are_checked_per_sighting() -> None:
    item = reworded()
    known = decoys(3 * MAX_VERIFIED)
    result = plan(WIRE, [item], known=known, hits=band_hits(item, [k.id for k in known]))
    assert result.verified == MAX_VERIFIED
    assert [n.story.title for n in result.new_stories] == [item.title]


def test_the_best_voted_candidate_is_checked_first_and_found() -> None:
    item = reworded()
    known = decoys(3 * MAX_VERIFIED)
    twin = stored(7, replace(item, feed="Agency", guid="agency-1", link="https://agency.example/1"))
    # The twin holds the sighting's headline as well as its bands: it outvotes every decoy.
    hits = band_hits(item, [k.id for k in known]) + held(twin, NOW)
    result = plan(WIRE, [item], known=[*known, twin], hits=hits)
    assert result.verified == 1
    assert result.new_stories == [] and {d.story_ref for d in result.deliveries} == {7}
