"""The delivery worker's rules (bot.core.delivery.DeliveryWorker), on the in-memory storage
backend with a recording sender and a clock that moves only when a test moves it: the order
cards go out in, retries and permanent failures, burst digests, edits of sent cards, and the
release of a platform's waiting cards when its connection comes back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from bot.core.delivery import DeliverySettings, DeliveryWorker
from bot.core.models import Delivery, DeliveryStatus, FeedSpec, FeedState, Story
from bot.core.ports import SendResult
from bot.core.routing import Route
from bot.core.store import DeliveryRow, IngestBatch, NewStoryRow, PollOutcome, RevisionRow, StoryRef
from storage.memory import MemoryStorage
from tests.core.fakes import DESTINATIONS, Call, Clock, RecordingSender, Script

DESK, NEWSROOM, RITA, PAGER = "toy:desk", "toy:newsroom", "toy:dm:rita", "pager:1234"


class Desk:
    """An in-memory outbox, a worker over it, and one recording sender per platform."""

    def __init__(
        self,
        *,
        settings: DeliverySettings | None = None,
        toy: Script | None = None,
        pager: Script | None = None,
        platforms: Sequence[str] = ("toy", "pager"),
    ) -> None:
        self.clock = Clock()
        self.store = MemoryStorage()
        self.toy = RecordingSender("toy", toy)
        self.pager = RecordingSender("pager", pager)
        self.failures: list[tuple[int, str]] = []

        async def failed(delivery: Delivery, reason: str) -> None:
            self.failures.append((delivery.id, reason))

        senders = {s.platform: s for s in (self.toy, self.pager) if s.platform in platforms}
        self.worker = DeliveryWorker(
            self.store,
            senders,
            clock=self.clock,
            destinations=DESTINATIONS,
            settings=settings,
            on_permanent_failure=failed,
        )
        self._feed: FeedState | None = None
        self.stories: dict[str, int] = {}

    async def story(self, headline: str, *targets: str) -> list[int]:
        """A new story owed a card in each of `targets` (a poll's write); the cards' ids."""
        if self._feed is None:
            spec = FeedSpec("Wire", "https://wire.example/rss", timedelta(minutes=2))
            self._feed = await self.store.add_feed(spec, "test", self.clock())
        item = Story(
            "Wire",
            headline,
            f"https://wire.example/{len(self.stories)}",
            summary="Details to follow.",
            published=self.clock(),
        )
        routes = [
            Route(t, (), "toy:rita", ("flood",))
            if ":dm:" in t
            else Route(t, ("Floods",), None, ("flood",))
            for t in targets
        ]
        ids = await self.store.apply_ingest(
            self._feed,
            IngestBatch(
                [NewStoryRow(-1, item, True)],
                deliveries=[DeliveryRow(StoryRef.new(-1), r) for r in routes],
            ),
            PollOutcome(ok=True),
            self.clock(),
        )
        self.stories[headline] = ids[-1]
        return [d.id for d in await self.store.deliveries_for_story(ids[-1])]

    async def many(self, target: str, headlines: Sequence[str]) -> None:
        """One story per headline, each owed a card in `target`."""
        for headline in headlines:
            await self.story(headline, target)

    async def revise(self, headline: str, new_headline: str) -> None:
        """A later poll rewrote the story's headline: its sent cards are due for an edit."""
        assert self._feed is not None
        story_id = self.stories[headline]
        [current] = (await self.store.load_stories([story_id])).values()
        rewritten = Story("Wire", new_headline, current.story.link, summary="Details to follow.")
        await self.store.apply_ingest(
            self._feed,
            IngestBatch(revisions=[RevisionRow(story_id, rewritten, True, True)]),
            PollOutcome(ok=True),
            self.clock(),
        )

    async def card(self, delivery_id: int) -> Delivery:
        for story_id in self.stories.values():
            for delivery in await self.store.deliveries_for_story(story_id):
                if delivery.id == delivery_id:
                    return delivery
        raise AssertionError(f"no delivery {delivery_id}")

    def error(self, delivery_id: int) -> str | None:
        # The stored reason has no reader in the storage interface; the contract suite reads
        # it the same way (tests/storage/conftest.py, MemoryInspector).
        return self.store._deliveries[delivery_id].error

    async def statuses(self) -> dict[str, DeliveryStatus]:
        return {
            f"{h}@{d.target}": d.status
            for h, sid in self.stories.items()
            for d in await self.store.deliveries_for_story(sid)
        }


def headlines(prefix: str, count: int) -> list[str]:
    return [f"{prefix} {n}" for n in range(1, count + 1)]


def fail_first(times: int, result: SendResult, kind: str = "send") -> Script:
    """Answer the first `times` calls of `kind` with `result`; then succeed."""
    left = [times]

    def script(call: Call) -> SendResult | None:
        if call.kind == kind and left[0] > 0:
            left[0] -= 1
            return result
        return None

    return script


def fail_headline(headline: str, result: SendResult) -> Script:
    return lambda call: result if headline in call.headlines else None


# --- order ---------------------------------------------------------------------------------------


async def test_cards_go_out_oldest_first_per_destination() -> None:
    desk = Desk()
    await desk.story("Dam inspected", DESK)
    await desk.story("Levee holds", NEWSROOM)
    await desk.story("River peaks", DESK, NEWSROOM)
    await desk.story("Roads reopen", DESK)

    assert await desk.worker.drain() == 5

    assert desk.toy.delivered_to(DESK) == ["Dam inspected", "River peaks", "Roads reopen"]
    assert desk.toy.delivered_to(NEWSROOM) == ["Levee holds", "River peaks"]
    assert set((await desk.statuses()).values()) == {DeliveryStatus.SENT}
    assert await desk.worker.drain() == 0  # each card exactly once


async def test_the_message_id_the_platform_gave_is_recorded() -> None:
    desk = Desk()
    [card] = await desk.story("Dam inspected", DESK)
    await desk.worker.drain()
    sent = await desk.card(card)
    assert (sent.status, sent.message_id) == (DeliveryStatus.SENT, "toy-msg-1")


# --- retries -------------------------------------------------------------------------------------


async def test_a_retryable_failure_is_retried_later_and_holds_back_its_destination() -> None:
    desk = Desk(toy=fail_first(1, SendResult.retry("503 Service Unavailable")))
    [first] = await desk.story("Dam inspected", DESK)
    await desk.story("River peaks", DESK)
    await desk.story("Levee holds", NEWSROOM)

    await desk.worker.drain()

    waiting = await desk.card(first)
    assert (waiting.status, waiting.attempts) == (DeliveryStatus.PENDING, 1)
    assert desk.error(first) == "503 Service Unavailable"
    # The desk's later card waits behind it; another destination is not held up.
    assert desk.toy.attempts(DESK) == ["Dam inspected"]
    assert desk.toy.delivered_to(NEWSROOM) == ["Levee holds"]

    desk.clock.advance(seconds=1)
    await desk.worker.drain()
    assert desk.toy.attempts(DESK) == ["Dam inspected"]  # not due yet

    desk.clock.advance(seconds=1)  # the first retry waits 2 s
    await desk.worker.drain()
    assert desk.toy.delivered_to(DESK) == ["Dam inspected", "River peaks"]
    assert set((await desk.statuses()).values()) == {DeliveryStatus.SENT}


async def test_retries_back_off_doubling_up_to_max_backoff() -> None:
    desk = Desk(toy=fail_first(10, SendResult.retry("timeout")))
    await desk.story("Dam inspected", DESK)
    await desk.worker.drain()

    waits = []
    for _ in range(10):
        before = len(desk.toy.calls)
        waited = 0
        while len(desk.toy.calls) == before:
            desk.clock.advance(seconds=1)
            waited += 1
            await desk.worker.drain()
            assert waited <= 600, "never retried"
        waits.append(waited)

    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]  # max_backoff: 5 minutes
    assert desk.toy.delivered_to(DESK) == ["Dam inspected"]


async def test_a_retry_after_from_the_platform_is_honoured() -> None:
    desk = Desk(toy=fail_first(1, SendResult.retry("429 Too Many Requests", retry_after=30)))
    await desk.story("Dam inspected", DESK)
    await desk.worker.drain()

    desk.clock.advance(seconds=29)
    await desk.worker.drain()
    assert desk.toy.delivered_to(DESK) == []

    desk.clock.advance(seconds=1)
    await desk.worker.drain()
    assert desk.toy.delivered_to(DESK) == ["Dam inspected"]


async def test_a_sender_that_raises_is_retried_not_lost() -> None:
    def explode(call: Call) -> SendResult | None:
        if len(desk.toy.calls) == 1:
            raise ConnectionResetError("peer went away")
        return None

    desk = Desk(toy=explode)
    [card] = await desk.story("Dam inspected", DESK)
    await desk.worker.drain()
    assert (await desk.card(card)).status == DeliveryStatus.PENDING
    assert desk.error(card) == "ConnectionResetError: peer went away"

    desk.clock.advance(seconds=2)
    await desk.worker.drain()
    assert (await desk.card(card)).status == DeliveryStatus.SENT


# --- permanent failures --------------------------------------------------------------------------


async def test_a_permanent_failure_is_recorded_with_its_reason_and_never_retried() -> None:
    reason = "Missing Access: the bot may not post in #desk"
    desk = Desk(toy=fail_headline("Dam inspected", SendResult.failed(reason)))
    [refused] = await desk.story("Dam inspected", DESK)
    await desk.story("River peaks", DESK)

    await desk.worker.drain()

    failed = await desk.card(refused)
    assert failed.status == DeliveryStatus.FAILED
    assert desk.error(refused) == reason
    assert desk.failures == [(refused, reason)]
    # It does not block the destination's later cards.
    assert desk.toy.delivered_to(DESK) == ["River peaks"]

    desk.clock.advance(days=1)
    await desk.worker.drain()
    assert desk.toy.attempts(DESK) == ["Dam inspected", "River peaks"]  # tried once, only
    assert (desk.worker.sent, desk.worker.failed) == (1, 1)


async def test_a_card_for_a_platform_with_no_connection_fails_with_the_reason() -> None:
    desk = Desk(platforms=["toy"])
    [lost] = await desk.story("Dam inspected", PAGER)
    await desk.worker.drain()
    assert (await desk.card(lost)).status == DeliveryStatus.FAILED
    assert desk.error(lost) == "no pager connection is configured"


# --- bursts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "full", "digested"),
    [(5, 5, 0), (6, 6, 0), (7, 5, 2), (8, 5, 3)],
    ids=["at-the-limit", "one-over-is-no-digest", "two-over", "three-over"],
)
async def test_a_burst_to_one_channel_beyond_the_threshold_becomes_one_digest(
    count: int, full: int, digested: int
) -> None:
    desk = Desk()  # burst_limit 5 a minute
    titles = headlines("Flood warning", count)
    await desk.many(DESK, titles)

    await desk.worker.drain()

    # The full cards first, in outbox order (equal prominence: the earliest win), then one
    # digest listing the rest in outbox order.
    assert desk.toy.delivered_to(DESK) == titles[:full]
    digests = [c.headlines for c in desk.toy.calls if c.kind == "digest"]
    assert digests == ([tuple(titles[full:])] if digested else [])
    assert set((await desk.statuses()).values()) == {DeliveryStatus.SENT}


async def test_the_most_prominent_cards_of_a_burst_are_the_full_ones() -> None:
    desk = Desk()
    titles = [*headlines("Flood warning", 7), "BREAKING: Carlisle flood wall fails"]
    await desk.many(DESK, titles)
    await desk.worker.drain()
    assert desk.toy.delivered_to(DESK) == [*titles[:4], titles[-1]]
    [digest] = [c.headlines for c in desk.toy.calls if c.kind == "digest"]
    assert digest == tuple(titles[4:7])


async def test_cards_sent_within_the_window_count_against_the_burst_limit() -> None:
    desk = Desk()
    await desk.many(DESK, headlines("Early", 4))
    await desk.worker.drain()

    desk.clock.advance(seconds=30)
    later = headlines("Later", 4)
    await desk.many(DESK, later)
    await desk.worker.drain()
    assert desk.toy.delivered_to(DESK)[4:] == later[:1]  # room for one more full card
    assert [c.headlines for c in desk.toy.calls if c.kind == "digest"] == [tuple(later[1:])]

    desk.clock.advance(seconds=61)  # the window has passed: full cards again
    calm = headlines("Calm", 3)
    await desk.many(DESK, calm)
    await desk.worker.drain()
    assert desk.toy.delivered_to(DESK)[-3:] == calm


async def test_a_long_burst_is_split_into_digests_of_digest_size() -> None:
    desk = Desk(settings=DeliverySettings(burst_limit=2, digest_size=10))
    titles = headlines("Flood warning", 24)
    await desk.many(DESK, titles)
    await desk.worker.drain()
    assert desk.toy.delivered_to(DESK) == titles[:2]
    sizes = [len(c.headlines) for c in desk.toy.calls if c.kind == "digest"]
    assert sizes == [10, 10, 2]
    assert set((await desk.statuses()).values()) == {DeliveryStatus.SENT}


async def test_a_persons_direct_messages_never_get_a_digest() -> None:
    desk = Desk()
    titles = headlines("Flood warning", 12)
    await desk.many(RITA, titles)
    await desk.worker.drain()
    assert desk.toy.delivered_to(RITA) == titles
    assert "digest" not in desk.toy.kinds()


async def test_a_digest_that_fails_for_now_is_retried_with_the_same_cards() -> None:
    desk = Desk(toy=fail_first(1, SendResult.retry("503"), kind="digest"))
    titles = headlines("Flood warning", 8)
    await desk.many(DESK, titles)
    await desk.worker.drain()

    desk.clock.advance(minutes=5)
    await desk.worker.drain()
    digests = [c.headlines for c in desk.toy.calls if c.kind == "digest"]
    assert digests == [tuple(titles[5:])] * 2  # the same digest, not regrouped
    assert desk.toy.delivered_to(DESK, "digest") == titles[5:]
    assert set((await desk.statuses()).values()) == {DeliveryStatus.SENT}


# --- updates -------------------------------------------------------------------------------------


async def test_a_storys_update_edits_the_card_already_sent() -> None:
    desk = Desk()
    [card] = await desk.story("Flood barrier raised", DESK)
    await desk.worker.drain()

    await desk.revise("Flood barrier raised", "Flood barrier fails")
    await desk.worker.drain()

    [sent, edit] = desk.toy.calls
    assert (edit.kind, edit.channel, edit.message_id) == ("edit", DESK, sent_id(desk, sent))
    assert (
        edit.card is not None and edit.card.update and edit.card.headline == "Flood barrier fails"
    )
    assert (await desk.card(card)).status == DeliveryStatus.SENT
    assert await desk.worker.drain() == 0  # edited once


def sent_id(desk: Desk, call: Call) -> str | None:
    return desk.toy.results[desk.toy.calls.index(call)].message_id


async def test_a_card_sent_after_the_update_shows_it_and_is_not_edited() -> None:
    desk = Desk()
    await desk.story("Flood barrier raised", DESK)
    await desk.revise("Flood barrier raised", "Flood barrier fails")
    await desk.worker.drain()
    assert desk.toy.kinds() == ["send"]
    assert desk.toy.delivered_to(DESK) == ["Flood barrier fails"]


async def test_an_edit_the_platform_refuses_for_good_is_dropped() -> None:
    desk = Desk(toy=fail_first(1, SendResult.failed("Unknown Message"), kind="edit"))
    [card] = await desk.story("Flood barrier raised", DESK)
    await desk.worker.drain()
    await desk.revise("Flood barrier raised", "Flood barrier fails")
    await desk.worker.drain()

    desk.clock.advance(hours=1)
    await desk.worker.drain()
    assert desk.toy.kinds() == ["send", "edit"]  # not tried again
    assert (await desk.card(card)).status == DeliveryStatus.SENT  # the card stands


async def test_an_edit_that_fails_for_now_is_retried_later() -> None:
    desk = Desk(toy=fail_first(1, SendResult.retry("503"), kind="edit"))
    await desk.story("Flood barrier raised", DESK)
    await desk.worker.drain()
    await desk.revise("Flood barrier raised", "Flood barrier fails")
    await desk.worker.drain()
    assert desk.toy.kinds() == ["send", "edit"]

    desk.clock.advance(seconds=2)
    await desk.worker.drain()
    assert desk.toy.delivered_to(DESK, "edit") == ["Flood barrier fails"]
    assert desk.toy.kinds() == ["send", "edit", "edit"]  # never a second card


async def test_cards_in_a_digest_are_not_edited() -> None:
    desk = Desk()
    titles = headlines("Flood warning", 8)
    await desk.many(DESK, titles)
    await desk.worker.drain()
    await desk.revise(titles[-1], "Flood warning withdrawn")  # a digest line
    await desk.revise(titles[0], "Flood warning upgraded")  # a full card
    await desk.worker.drain()
    assert desk.toy.attempts(DESK, "edit") == ["Flood warning upgraded"]


# --- a platform back online ----------------------------------------------------------------------


async def test_release_sends_a_platforms_waiting_cards_at_once_and_only_its_own() -> None:
    outage = SendResult.retry("gateway down", retry_after=600)
    desk = Desk(toy=fail_first(1, outage), pager=fail_first(1, outage))
    await desk.story("Dam inspected", DESK)
    await desk.story("River peaks", DESK)
    await desk.story("Levee holds", PAGER)
    await desk.worker.drain()
    assert desk.toy.delivered_to(DESK) == [] and desk.pager.delivered_to(PAGER) == []

    desk.worker.release("toy")
    await desk.worker.drain()  # the clock has not moved

    assert desk.toy.delivered_to(DESK) == ["Dam inspected", "River peaks"]
    assert desk.pager.attempts(PAGER) == ["Levee holds"]  # still waiting out its retry


async def test_release_sends_every_waiting_card_even_beyond_one_batch() -> None:
    outage = SendResult.retry("gateway down", retry_after=600)
    settings = DeliverySettings(batch=3, burst_limit=100)
    desk = Desk(settings=settings, toy=fail_first(1, outage))
    titles = headlines("Flood warning", 8)
    await desk.many(DESK, titles)
    await desk.worker.drain()
    assert desk.toy.attempts(DESK) == titles[:1]  # the rest wait behind it

    desk.worker.release("toy")
    await desk.worker.drain()

    assert desk.toy.delivered_to(DESK) == titles
