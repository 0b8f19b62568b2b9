"""The storage contract for quiet hours and digests (bot.core.quiet), on every backend: a
person's settings round-trip, and a person's held card waits, durably, without holding up the
cards behind it, until its time or until the person changes their settings."""

from __future__ import annotations

from datetime import timedelta

from bot.core.models import DeliveryStatus, DigestMode, SubscriberSettings
from storage.sqlite import SqliteStorage
from tests.storage.test_storage_contract import (
    AP,
    EDITOR_DM,
    NOW,
    REUTERS,
    config_feeds,
    delivery_to,
    ecb_story,
    editor_route,
    ingest,
    kyiv_story,
    quake_story,
)

EDITOR = "discord:284917365023981569"
NIGHT = SubscriberSettings(
    timezone="Europe/Kyiv",
    quiet_start=22 * 60,
    quiet_end=7 * 60 + 30,
    urgent_through=False,
    mode=DigestMode.DAILY,
    daily_at=6 * 60 + 45,
)


async def _three_for_the_editor(storage) -> list[int]:
    reuters, ap = await config_feeds(storage, REUTERS, AP)
    stories = [
        *await ingest(storage, reuters, [(ecb_story(), [editor_route()])]),
        *await ingest(storage, ap, [(quake_story(), [editor_route()])]),
        *await ingest(storage, reuters, [(kyiv_story("Reuters World"), [editor_route()])]),
    ]
    return [(await delivery_to(storage, s, EDITOR_DM)).id for s in stories]


async def test_a_held_card_waits_until_its_time_without_holding_up_later_ones(storage):
    first, second, third = await _three_for_the_editor(storage)
    until = NOW + timedelta(hours=8)

    await storage.hold_deliveries([first, second], until)

    # Unlike a card waiting out a retry, a held card does not keep the later ones back.
    assert [d.id for d, _ in await storage.due_deliveries(NOW, 10)] == [third]
    early = await storage.due_deliveries(until - timedelta(seconds=1), 10)
    assert [d.id for d, _ in early] == [third]
    due = await storage.due_deliveries(until, 10)
    assert [d.id for d, _ in due] == [first, second, third]
    held = {d.id: d for d, _ in due}
    assert held[first].held_until == until and held[second].held_until == until
    assert held[third].held_until is None
    # Waiting is not an attempt.
    assert held[first].attempts == 0 and held[first].status == DeliveryStatus.PENDING

    # A held card that then fails to send is an ordinary retry: it keeps the later ones back.
    await storage.reschedule(first, "HTTP 503", until + timedelta(seconds=30), update=False)
    assert await storage.due_deliveries(until, 10) == []
    due = await storage.due_deliveries(until + timedelta(seconds=30), 10)
    assert (due[0][0].id, due[0][0].held_until) == (first, None)
    # Holding leaves a card that is no longer pending alone.
    await storage.mark_sent(second, "m2", until)
    await storage.hold_deliveries([second], until + timedelta(hours=1))
    assert second not in [
        d.id for d, _ in await storage.due_deliveries(until + timedelta(days=1), 10)
    ]


async def test_a_persons_settings_round_trip_and_new_ones_make_held_cards_due(storage):
    assert await storage.subscriber_settings([EDITOR]) == {}
    await storage.set_subscriber_settings(EDITOR, NIGHT, NOW)
    assert await storage.subscriber_settings([EDITOR]) == {EDITOR: NIGHT}
    assert await storage.subscriber_settings(["slack:U0SOMEONE", EDITOR, EDITOR]) == {EDITOR: NIGHT}
    assert await storage.subscriber_settings([]) == {}
    first, second, third = await _three_for_the_editor(storage)
    until = NOW + timedelta(hours=8)
    await storage.hold_deliveries([first, second], until)
    await storage.mark_sent(third, "m3", NOW)

    # Someone else's settings change nothing for the editor.
    await storage.set_subscriber_settings("slack:U0SOMEONE", NIGHT, NOW)
    assert await storage.due_deliveries(NOW, 10) == []

    plain = SubscriberSettings(timezone="America/New_York")
    await storage.set_subscriber_settings(EDITOR, plain, NOW)
    assert await storage.subscriber_settings([EDITOR]) == {EDITOR: plain}  # replaced whole

    due = await storage.due_deliveries(NOW, 10)
    assert [d.id for d, _ in due] == [first, second]
    # Still marked as held until then: the worker decides them afresh under the new settings.
    assert [d.held_until for d, _ in due] == [until, until]


async def test_a_held_card_survives_a_restart_of_the_store(tmp_path):
    """Durable: a restart during quiet hours forgets no held card and makes none due early."""
    path = tmp_path / "newsbot.db"
    storage = await SqliteStorage.open(path)
    try:
        first, second, third = await _three_for_the_editor(storage)
        await storage.set_subscriber_settings(EDITOR, NIGHT, NOW)
        await storage.hold_deliveries([first, second, third], NOW + timedelta(hours=8))
    finally:
        await storage.close()

    again = await SqliteStorage.open(path)
    try:
        assert await again.subscriber_settings([EDITOR]) == {EDITOR: NIGHT}
        assert await again.due_deliveries(NOW + timedelta(hours=7), 10) == []
        due = await again.due_deliveries(NOW + timedelta(hours=8), 10)
        assert [d.id for d, _ in due] == [first, second, third]
    finally:
        await again.close()


async def test_waiting_cards_are_a_destinations_held_cards_now_due_in_no_digest(storage):
    first, second, third = await _three_for_the_editor(storage)
    until = NOW + timedelta(hours=8)
    await storage.hold_deliveries([first, second, third], until)

    assert await storage.waiting_cards(EDITOR_DM, until - timedelta(seconds=1), 10) == []
    waiting = await storage.waiting_cards(EDITOR_DM, until, 10)
    assert [d.id for d, _ in waiting] == [first, second, third]
    assert [s.story.title for _, s in waiting][1] == quake_story().title
    assert [d.id for d, _ in await storage.waiting_cards(EDITOR_DM, until, 2)] == [first, second]
    assert await storage.waiting_cards("discord:dm:1", until, 10) == []

    await storage.assign_digest([first], "quiet:1-1")
    await storage.mark_sent(second, "m2", until)
    assert [d.id for d, _ in await storage.waiting_cards(EDITOR_DM, until, 10)] == [third]
