"""The delivery worker under a person's settings (bot.core.quiet), on the in-memory backend with
a recording sender and a clock that moves only when a test moves it: cards owed in the quiet
hours wait and come as one digest when they end, an urgent story comes through when allowed,
hourly digests, and a channel's cards that take no notice of any of it."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core.delivery import DeliverySettings
from bot.core.models import DigestMode, SubscriberSettings
from bot.core.ports import SendResult
from tests.core.fakes import Call
from tests.core.test_delivery_worker import DESK, RITA, Desk

RITA_KEY = "toy:rita"  # who the cards in RITA's direct messages are for
# The fake clock starts at 09:00 UTC: inside these quiet hours, which end at 10:00.
MORNING_QUIET = SubscriberSettings("UTC", 8 * 60, 10 * 60)


async def rita_sets(desk: Desk, settings: SubscriberSettings) -> None:
    await desk.store.set_subscriber_settings(RITA_KEY, settings, desk.clock())


async def test_cards_owed_in_quiet_hours_come_as_one_digest_when_they_end() -> None:
    desk = Desk()
    await rita_sets(desk, MORNING_QUIET)
    await desk.many(RITA, ["Flood one", "Flood two", "Flood three"])
    await desk.story("Flood barrier raised", DESK)  # a channel's card ignores her quiet hours

    await desk.worker.drain()
    assert desk.toy.delivered_to(DESK) == ["Flood barrier raised"]
    assert [c for c in desk.toy.calls if c.channel == RITA] == []

    desk.clock.advance(minutes=59)
    await desk.worker.drain()
    assert [c for c in desk.toy.calls if c.channel == RITA] == []

    desk.clock.advance(minutes=1)  # 10:00: the quiet hours are over
    await desk.worker.drain()
    [digest] = [c for c in desk.toy.calls if c.channel == RITA]
    assert (digest.kind, digest.headlines) == ("digest", ("Flood one", "Flood two", "Flood three"))
    assert digest.digest is not None and digest.digest.reason == "from your quiet hours"

    desk.clock.advance(hours=1)
    await desk.worker.drain()
    assert len([c for c in desk.toy.calls if c.channel == RITA]) == 1  # nothing twice
    assert set((await desk.statuses()).values()) == {"sent"}


async def test_after_the_quiet_hours_cards_come_one_by_one_again() -> None:
    desk = Desk()
    await rita_sets(desk, MORNING_QUIET)
    await desk.story("Flood one", RITA)
    await desk.worker.drain()
    assert desk.toy.calls == []
    desk.clock.advance(hours=1)
    await desk.story("Flood two", RITA)

    await desk.worker.drain()

    # One card waited: it comes as itself, not as a digest of one; then the new one.
    assert [(c.kind, c.headlines) for c in desk.toy.calls] == [
        ("send", ("Flood one",)),
        ("send", ("Flood two",)),
    ]


async def test_an_urgent_story_comes_through_the_quiet_hours_when_allowed() -> None:
    desk = Desk()
    await rita_sets(desk, MORNING_QUIET)
    await desk.story("Flood one", RITA)
    await desk.story("BREAKING: Dam bursts above the town", RITA)
    await desk.story("Flood two", RITA)

    await desk.worker.drain()
    assert desk.toy.delivered_to(RITA) == ["BREAKING: Dam bursts above the town"]

    desk.clock.advance(hours=1)
    await desk.worker.drain()
    assert desk.toy.delivered_to(RITA, "digest") == ["Flood one", "Flood two"]


async def test_an_urgent_story_is_not_kept_back_by_the_cards_already_waiting() -> None:
    desk = Desk()
    await rita_sets(desk, MORNING_QUIET)
    await desk.many(RITA, ["Flood one", "Flood two"])
    await desk.worker.drain()
    desk.clock.advance(minutes=20)

    await desk.story("FLASH - Dam bursts above the town", RITA)
    await desk.worker.drain()

    assert [(c.kind, c.headlines) for c in desk.toy.calls] == [
        ("send", ("FLASH - Dam bursts above the town",))
    ]


async def test_an_urgent_story_waits_with_the_rest_when_not_allowed() -> None:
    desk = Desk()
    await rita_sets(desk, SubscriberSettings("UTC", 8 * 60, 10 * 60, urgent_through=False))
    await desk.story("Flood one", RITA)
    await desk.story("BREAKING: Dam bursts above the town", RITA)

    await desk.worker.drain()
    assert desk.toy.calls == []

    desk.clock.advance(hours=1)
    await desk.worker.drain()
    assert desk.toy.delivered_to(RITA, "digest") == [
        "Flood one",
        "BREAKING: Dam bursts above the town",
    ]


async def test_a_digest_that_fails_is_sent_again_as_it_was_formed() -> None:
    failed: list[Call] = []

    def once(call: Call) -> SendResult | None:
        if call.kind == "digest" and not failed:
            failed.append(call)
            return SendResult.retry("HTTP 503")
        return None

    desk = Desk(toy=once)
    await rita_sets(desk, MORNING_QUIET)
    await desk.many(RITA, ["Flood one", "Flood two"])
    await desk.worker.drain()
    desk.clock.advance(hours=1)
    await desk.worker.drain()
    assert desk.toy.delivered_to(RITA, "digest") == []

    # A card that arrives meanwhile is not slipped into it: the same digest, the same words
    # (a platform recognises a re-send by its cards), then the new card.
    await desk.story("Flood three", RITA)
    desk.clock.advance(minutes=5)
    await desk.worker.drain()
    again = [c for c in desk.toy.calls if c.kind == "digest"]
    assert [c.headlines for c in again] == [("Flood one", "Flood two")] * 2
    assert again[1].digest is not None and again[1].digest.reason == "from your quiet hours"
    assert desk.toy.delivered_to(RITA) == ["Flood three"]


async def test_an_hourly_digest_gathers_the_hours_cards() -> None:
    desk = Desk()
    await rita_sets(desk, SubscriberSettings(mode=DigestMode.HOURLY))
    desk.clock.advance(minutes=10)
    await desk.story("Flood one", RITA)
    await desk.worker.drain()
    desk.clock.advance(minutes=30)
    await desk.story("Flood two", RITA)
    await desk.worker.drain()
    assert desk.toy.calls == []

    desk.clock.advance(minutes=20)  # 10:00
    await desk.worker.drain()
    [digest] = desk.toy.calls
    assert digest.headlines == ("Flood one", "Flood two")
    assert digest.digest is not None and digest.digest.reason == "in your hourly digest"


async def test_clearing_the_quiet_hours_sends_what_waited_at_once() -> None:
    desk = Desk()
    await rita_sets(desk, MORNING_QUIET)
    await desk.many(RITA, ["Flood one", "Flood two"])
    await desk.worker.drain()
    assert desk.toy.calls == []

    await rita_sets(desk, SubscriberSettings())
    await desk.worker.drain()

    assert desk.toy.delivered_to(RITA, "digest") == ["Flood one", "Flood two"]


async def test_a_restart_in_the_quiet_hours_loses_nothing_and_sends_nothing_early() -> None:
    desk = Desk()
    await rita_sets(desk, MORNING_QUIET)
    await desk.many(RITA, ["Flood one", "Flood two"])
    await desk.worker.drain()

    restarted = Desk()  # a new worker over the same outbox
    restarted.store, restarted.clock = desk.store, desk.clock
    restarted.worker.store, restarted.worker.clock = desk.store, desk.clock
    await restarted.worker.drain()
    assert restarted.toy.calls == []

    desk.clock.advance(hours=1)
    await restarted.worker.drain()
    assert restarted.toy.delivered_to(RITA, "digest") == ["Flood one", "Flood two"]
    assert desk.toy.calls == []


async def test_one_digest_per_person_however_many_batches_their_cards_span() -> None:
    # The outbox is read 5 cards at a time; 3 people are owed 4 cards each.
    desk = Desk(settings=DeliverySettings(batch=5))
    people = ["toy:dm:rita", "toy:dm:sam", "toy:dm:uma"]
    await rita_sets(desk, MORNING_QUIET)  # the test desk writes every DM card as hers
    for n in range(1, 5):
        await desk.story(f"Flood {n}", *people)
    await desk.worker.drain()
    assert desk.toy.calls == []

    desk.clock.advance(hours=1)
    await desk.worker.drain()

    assert sorted((c.kind, c.channel, c.headlines) for c in desk.toy.calls) == [
        ("digest", person, ("Flood 1", "Flood 2", "Flood 3", "Flood 4")) for person in people
    ]


async def test_a_persons_digest_is_capped_and_the_rest_follow_in_the_next() -> None:
    desk = Desk(settings=DeliverySettings(person_digest=3))
    await rita_sets(desk, MORNING_QUIET)
    await desk.many(RITA, [f"Flood {n}" for n in range(1, 6)])
    await desk.worker.drain()
    desk.clock.advance(hours=1)
    await desk.worker.drain()

    assert [(c.kind, c.headlines) for c in desk.toy.calls] == [
        ("digest", ("Flood 1", "Flood 2", "Flood 3")),
        ("digest", ("Flood 4", "Flood 5")),
    ]


async def test_the_night_the_clocks_go_back_ends_at_seven_local() -> None:
    desk = Desk()
    # 23:30 BST on 24 Oct 2026; British Summer Time ends at 02:00 that night.
    desk.clock.now = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)
    await rita_sets(desk, SubscriberSettings("Europe/London", 22 * 60, 7 * 60))
    await desk.many(RITA, ["Flood one", "Flood two"])
    await desk.worker.drain()

    desk.clock.now = datetime(2026, 10, 25, 6, 30, tzinfo=UTC)  # 06:30 GMT: still quiet
    await desk.worker.drain()
    assert desk.toy.calls == []

    desk.clock.now = datetime(2026, 10, 25, 7, 0, tzinfo=UTC)  # 07:00 GMT
    await desk.worker.drain()
    assert desk.toy.delivered_to(RITA, "digest") == ["Flood one", "Flood two"]
