"""The work per story is bounded on formulaic feeds (issue 13, part 4): a new bulletin shares
MinHash bands with most stored ones, yet only the best-voted few are verified, and the store
hands back only the newest holders of a key that common."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from bench.feedserver import formulaic_text
from bot.core.identity import KeyKind, fuzzy_keys, strong_keys
from bot.core.models import FeedSpec, FeedState, Origin, StoredStory, Story, Watchlist
from bot.core.pipeline import (
    MAX_VERIFIED,
    IngestPlan,
    IngestSettings,
    NewStory,
    PlannedKey,
    _Sighting,
    check_candidates,
    key_index,
    plan_ingest,
    ranked_candidates,
)
from bot.core.ports import KeyHit, PollOutcome
from bot.core.routing import QueryBook
from storage.sqlite import WINDOW_HITS_PER_KEY, SqliteStorage

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def bulletins(count: int, seed: int = 3) -> list[Story]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        title, lead = formulaic_text(rng)
        out.append(Story("Quakes", title, f"https://q.example/{n}", f"q{n}", lead, lead, NOW))
    return out


def feed(feed_id: int, name: str) -> FeedState:
    return FeedState(
        feed_id,
        name,
        f"https://{name}.example/rss",
        timedelta(minutes=2),
        Origin.CONFIG,
        baseline_done=True,
    )


def stored_bulletins(count: int) -> tuple[list[Story], dict[int, StoredStory], list[KeyHit]]:
    """Bulletins stored an hour ago (ids from 1), and the hits on all their fuzzy keys."""
    stored = bulletins(count)
    stories = {
        i + 1: StoredStory(i + 1, 1, s, NOW - timedelta(hours=1), 0, True)
        for i, s in enumerate(stored)
    }
    hits = [
        KeyHit(k.value, k.kind, story_id, NOW - timedelta(hours=1))
        for story_id, known in stories.items()
        for k in fuzzy_keys(known.story)
    ]
    return stored, stories, hits


def test_a_new_bulletin_verifies_only_the_best_voted_few_and_still_finds_its_twin():
    stored, stories, hits = stored_bulletins(400)
    twin = stored[123]
    # Another wire re-issues bulletin 124 under its own GUID and link; and one new bulletin.
    reissued = Story("Wire", twin.title, "https://wire.example/r", "w1", twin.summary, twin.content)
    fresh = Story("Wire", "M 9.9 earthquake - 1 km N of Nowhere", "https://wire.example/n", "w2")
    sightings = [
        _Sighting(s, strong_keys(s, 2, guid_unique=True), fuzzy_keys(s)) for s in (reissued, fresh)
    ]
    plan = plan_ingest(
        feed(2, "wire"), sightings, hits, stories, QueryBook([], []), IngestSettings(), NOW
    )
    assert [ns.story.title for ns in plan.new_stories] == [fresh.title]
    assert {k.story_ref for k in plan.keys if k.key.kind == KeyKind.URL} >= {124}
    assert plan.verified <= 2 * MAX_VERIFIED


def test_candidates_read_as_headline_and_lead_give_the_plan_that_whole_stories_give():
    # The pipeline reads a near-duplicate candidate as its headline and lead, checks it, and
    # loads in full only those a sighting accepts: the plan must be the one it would make with
    # every candidate loaded whole (same new stories, same merges, same cards, same checks).
    stored, stories, hits = stored_bulletins(300)
    rng = random.Random(11)
    items = []
    for n in range(40):
        if n % 3 == 0:  # another wire's copy of a stored bulletin, or a lead cut short
            twin = stored[rng.randrange(len(stored))]
            lead = twin.summary if n % 2 else twin.summary.rsplit(" ", 3)[0]
            items.append(Story("Wire", twin.title, f"https://w.example/{n}", f"w{n}", lead, lead))
        else:
            title, lead = formulaic_text(rng)
            items.append(Story("Wire", title, f"https://w.example/{n}", f"w{n}", lead, lead))
    items.append(items[1])  # and one repeated inside the document
    sightings = [_Sighting(s, strong_keys(s, 2, guid_unique=True), fuzzy_keys(s)) for s in items]
    book = QueryBook([Watchlist(1, "Quakes", "magnitude", ("toy:desk",), Origin.CONFIG)], [])
    settings = IngestSettings()
    wire = feed(2, "wire")

    whole = plan_ingest(wire, sightings, hits, stories, book, settings, NOW, ignore=frozenset())
    # As the pipeline does it: each sighting's best-voted few, voted once; their texts; the
    # checks; the accepted ones loaded whole.
    by_key = key_index(hits, NOW - timedelta(hours=48))
    ranked = [ranked_candidates(s.fuzzy, by_key)[:MAX_VERIFIED] for s in sightings]
    texts = {i: (s.story.title, s.story.summary) for i, s in stories.items()}
    checks = check_candidates(sightings, ranked, texts, set(), frozenset())
    accepted = {ref for c in checks for ref, same in c.items() if same}
    loaded = {i: stories[i] for i in accepted}
    light = plan_ingest(
        wire,
        sightings,
        hits,
        loaded,
        book,
        settings,
        NOW,
        ignore=frozenset(),
        texts=texts,
        checks=checks,
        ranked=ranked,
    )

    assert 0 < len(accepted) < len(texts) / 10  # most candidates never load whole
    assert whole.sightings and light.sightings == whole.sightings  # the merges
    assert [n.story for n in light.new_stories] == [n.story for n in whole.new_stories]
    assert light.keys == whole.keys
    assert light.deliveries == whole.deliveries
    assert light.verified == whole.verified


async def test_the_store_returns_only_the_newest_holders_of_a_common_windowed_key(tmp_path):
    store = await SqliteStorage.open(":memory:")
    try:
        state = await store.add_feed(
            FeedSpec("Quakes", "https://q.example/rss", timedelta(minutes=2)), "test", NOW
        )
        stories = bulletins(WINDOW_HITS_PER_KEY * 3)
        common = fuzzy_keys(stories[0])[0]
        plan = IngestPlan(
            new_stories=[NewStory(-(i + 1), s, False) for i, s in enumerate(stories)],
            keys=[PlannedKey(-(i + 1), common) for i in range(len(stories))],
        )
        ids = await store.apply_ingest(state, plan, PollOutcome(ok=True), NOW)
        windowed = await store.find_keys([common.value], since=NOW - timedelta(hours=48))
        newest = sorted(ids.values())[-WINDOW_HITS_PER_KEY:]
        assert sorted(h.story_id for h in windowed) == newest
        # Without a window (GUID and link lookups) every holder is returned.
        assert len(await store.find_keys([common.value])) == len(stories)
    finally:
        await store.close()
