"""/why's answers on plain values (bot.core.explain over the in-memory store): the cases the
end-to-end tests do not reach cheaply. Those are in tests/chat/*/test_*_why.py."""

from __future__ import annotations

from datetime import timedelta

from bot.core.explain import Viewer, WhySettings, explain
from bot.core.identity import strong_keys
from bot.core.models import FeedSpec, Story
from bot.core.pipeline import IngestPlan, NewStory, PlannedDelivery, PlannedKey, Revision
from bot.core.ports import PollOutcome
from bot.core.routing import Route
from storage.memory import MemoryStorage
from tests.core.fakes import NOW

OLD_LINK = "https://wire.example/flood-draft"
NEW_LINK = "https://wire.example/flood-warnings-severn"
TITLE = "Flood warnings issued for the Severn"


async def desk() -> MemoryStorage:
    """A story first listed under one link, then moved by its feed to another (the identity
    keys of both lead to it), with a card in toy:desk; a watchlist whose stored query no longer
    parses (written by an older version, say)."""
    store = MemoryStorage()
    await store.sync_config_feeds([FeedSpec("Wire", "https://wire.example/rss", timedelta(1))], NOW)
    await store.sync_config_watchlists(
        [("Floods", "flood", ["toy:desk"]), ("Broken", 'flood AND "unclosed', ["toy:desk"])], NOW
    )
    feed = await store.get_feed("Wire")
    assert feed is not None
    first = Story("Wire", TITLE, OLD_LINK, "g1", TITLE, TITLE, NOW)
    moved = Story("Wire", TITLE, NEW_LINK, "g1", TITLE, TITLE, NOW)
    plan = IngestPlan(
        new_stories=[NewStory(-1, first, True)],
        keys=[
            PlannedKey(-1, key)
            for story in (first, moved)
            for key in strong_keys(story, feed.id, guid_unique=True)
        ],
        deliveries=[PlannedDelivery(-1, Route("toy:desk", ("Floods",), None, ("Flood",)))],
    )
    ids = await store.apply_ingest(feed, plan, PollOutcome(ok=True), NOW)
    await store.apply_ingest(
        feed,
        IngestPlan(revisions=[Revision(ids[-1], moved, notify=True, alertable=True)]),
        PollOutcome(ok=True),
        NOW,
    )
    return store


async def ask(store: MemoryStorage, text: str) -> list[str]:
    reply = await explain(store, text, Viewer("toy:ed", admin=True), WhySettings(), NOW)
    return [reply.text, *(item.text for item in reply.items)]


async def test_a_link_the_story_no_longer_has_still_finds_it_and_says_so() -> None:
    store = await desk()

    old = await ask(store, OLD_LINK)
    new = await ask(store, NEW_LINK + "?utm_source=share")

    assert old[0] == (
        "Why: that link is another listing of a story first seen on Wire: "
        f'"{TITLE}". One story gets one card per channel; its cards are below.'
    )
    assert new[0] == f'Why: "{TITLE}"'
    assert "Watchlist Floods → toy:desk: card waiting to be sent" in new


async def test_a_stored_query_that_no_longer_parses_is_named_not_fatal() -> None:
    store = await desk()

    answer = await ask(store, "Severn")

    assert "Watchlist Broken: its query does not parse, so it alerts nobody until fixed" in answer


async def test_nothing_to_ask_and_too_much_to_ask_are_refused() -> None:
    store = await desk()
    for text, refusal in (
        ("   ", "Give a story's link or some words of its headline."),
        ("x" * 1001, "That is more than 1000 characters; give a link or a few words."),
    ):
        reply = await explain(store, text, Viewer("toy:ed"), WhySettings(), NOW)
        assert (reply.ok, reply.text) == (False, refusal)
