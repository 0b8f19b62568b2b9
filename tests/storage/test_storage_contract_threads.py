"""The storage contract of threads of updates (issue 18): a watchlist's `updates` mode, the mode
each card was planned with, the other feeds that carry a story, and when a thread-mode card is
due for an edit because of them. Runs once per backend of `conftest.BACKENDS`."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.core.models import Origin, PingWhen, Updates, WatchlistSpec
from bot.core.pipeline import IngestPlan, PlannedDelivery
from bot.core.routing import Route
from bot.core.store import SourceRow
from tests.storage.test_storage_contract import (
    AP,
    MARKETS_CHANNEL,
    NOW,
    OK,
    REUTERS,
    config_feeds,
    delivery_to,
    ecb_story,
    ingest,
    revise,
    revised,
)

THREAD_CHANNEL = "slack:C07THREADS1"


def routes() -> list[Route]:
    return [
        Route(MARKETS_CHANNEL, ("Markets desk",), None, ("ECB",)),
        Route(THREAD_CHANNEL, ("Rates",), None, ("ECB",), thread=True),
    ]


async def carried_by(storage, feed, story_id: int, *names: str, now=NOW) -> None:
    plan = IngestPlan(sources=[SourceRow(story_id, name) for name in names])
    await storage.apply_ingest(feed, plan, OK, now)


async def test_a_watchlists_updates_mode_is_stored_from_the_file_and_from_chat(storage):
    await storage.sync_config_watchlists(
        [
            ("Floods", "flood", ["console:desk"]),
            WatchlistSpec(
                "Rates", "ECB", [THREAD_CHANNEL], ["user:U0DESK"], PingWhen.ALWAYS, Updates.THREAD
            ),
        ],
        NOW,
    )
    await storage.add_watchlist(
        "Quakes", "earthquake", [MARKETS_CHANNEL], "slack:U1", NOW, updates=Updates.THREAD
    )
    modes = {w.name: (w.updates, w.origin) for w in await storage.list_watchlists()}
    assert modes == {
        "Floods": (Updates.EDIT, Origin.CONFIG),
        "Quakes": (Updates.THREAD, Origin.CHAT),
        "Rates": (Updates.THREAD, Origin.CONFIG),
    }
    assert await storage.update_watchlist("quakes", updates=Updates.EDIT, now=NOW)
    assert (await storage.get_watchlist("Quakes")).updates == Updates.EDIT
    assert await storage.update_watchlist("Quakes", query="quake", now=NOW)  # mode kept
    assert (await storage.get_watchlist("Quakes")).updates == Updates.EDIT
    # The mode and the pings (issue 18's other half) are set apart and kept apart.
    rates = await storage.get_watchlist("Rates")
    assert (rates.ping, rates.ping_when) == (("user:U0DESK",), PingWhen.ALWAYS)
    assert await storage.update_watchlist("Quakes", updates=Updates.THREAD, now=NOW)
    assert await storage.update_watchlist("Quakes", ping=["user:U0ANN"], now=NOW)
    quakes = await storage.get_watchlist("Quakes")
    assert (quakes.updates, quakes.ping) == (Updates.THREAD, ("user:U0ANN",))
    assert await storage.update_watchlist("Quakes", updates=Updates.EDIT, now=NOW)
    quakes = await storage.get_watchlist("Quakes")
    assert (quakes.updates, quakes.ping) == (Updates.EDIT, ("user:U0ANN",))
    # The file says edit again (by leaving it out): the file wins.
    await storage.sync_config_watchlists([("Rates", "ECB", [THREAD_CHANNEL])], NOW)
    assert (await storage.get_watchlist("Rates")).updates == Updates.EDIT


async def test_a_new_source_makes_only_sent_thread_cards_due_and_names_the_feeds(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    (story_id,) = await ingest(storage, reuters, [(ecb_story(), routes())])
    edit_card = await delivery_to(storage, story_id, MARKETS_CHANNEL)
    thread_card = await delivery_to(storage, story_id, THREAD_CHANNEL)
    assert (edit_card.thread, thread_card.thread) == (False, True)
    for card in (edit_card, thread_card):
        await storage.mark_sent(card.id, f"m-{card.id}", NOW, revision=0, sources=0)

    later = NOW + timedelta(minutes=5)
    await carried_by(storage, ap, story_id, "AP Top News", "BBC World", now=later)
    due = await storage.due_deliveries(later, 10)
    assert [(d.id, s.sources) for d, s in due] == [(thread_card.id, ("AP Top News", "BBC World"))]
    (card, _) = due[0]
    # An edit for sources alone is not counted toward the update cap.
    await storage.mark_update_done(card.id, later, revision=0, sources=2)
    after = await delivery_to(storage, story_id, THREAD_CHANNEL)
    assert (after.update_pending, after.update_count, after.shown_revision) == (False, 0, 0)
    assert await storage.due_deliveries(later, 10) == []

    # A feed that carries it again edits nothing; a rewrite is counted and remembered.
    await carried_by(storage, ap, story_id, "AP Top News", now=later)
    assert await storage.due_deliveries(later, 10) == []
    await revise(storage, reuters, story_id, revised(ecb_story()), notify=True, now=later)
    due = await storage.due_deliveries(later, 10)
    assert sorted(d.id for d, _ in due) == sorted([edit_card.id, thread_card.id])
    for d, s in due:
        await storage.mark_update_done(d.id, later, revision=s.revision, sources=len(s.sources))
    after = await delivery_to(storage, story_id, THREAD_CHANNEL)
    assert (after.update_pending, after.update_count, after.shown_revision) == (False, 1, 1)


async def test_a_source_landing_while_a_thread_card_is_sent_or_edited_is_not_lost(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    (story_id,) = await ingest(storage, reuters, [(ecb_story(), routes()[1:])])
    ((sending, read),) = await storage.due_deliveries(NOW, 10)
    assert read.sources == ()
    await carried_by(storage, ap, story_id, "AP Top News")  # meanwhile
    await storage.mark_sent(sending.id, "m-1", NOW, revision=read.revision, sources=0)
    ((editing, read),) = await storage.due_deliveries(NOW, 10)
    assert read.sources == ("AP Top News",)

    await carried_by(storage, ap, story_id, "BBC World")  # while that edit is made
    await storage.mark_update_done(editing.id, NOW, revision=read.revision, sources=1)
    ((_, read),) = await storage.due_deliveries(NOW, 10)
    assert read.sources == ("AP Top News", "BBC World")


async def test_sources_of_an_unknown_story_are_ignored_and_go_with_a_pruned_one(storage):
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    (story_id,) = await ingest(storage, reuters, [(ecb_story(), routes()[1:])])
    await carried_by(storage, ap, story_id + 1000, "AP Top News")  # no such story: no error
    await carried_by(storage, ap, story_id, "AP Top News")
    await storage.prune(
        NOW + timedelta(days=30),
        stories=timedelta(days=7),
        keys=timedelta(days=365),
        window=timedelta(days=2),
    )
    assert await storage.load_stories([story_id]) == {}
    # The card went with its story; a story with the same id cannot come back (ids are never
    # reused), so nothing can inherit the sources.
    assert await storage.deliveries_for_story(story_id) == []


async def test_a_thread_route_renews_the_cards_mode(storage):
    (reuters,) = await config_feeds(storage, REUTERS)
    (story_id,) = await ingest(storage, reuters, [(ecb_story(), routes()[:1])])
    assert not (await delivery_to(storage, story_id, MARKETS_CHANNEL)).thread
    plan = IngestPlan()
    plan.deliveries.append(PlannedDelivery(story_id, replace(routes()[0], thread=True), True))
    await storage.apply_ingest(reuters, plan, OK, NOW)
    assert (await delivery_to(storage, story_id, MARKETS_CHANNEL)).thread
