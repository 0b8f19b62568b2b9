"""The delivery worker in thread mode (issue 18), on the in-memory backend with a recording
sender: a rewrite is an edit and a reply under the card; a new source is an edit alone; the
update cap bounds the replies; a reply that fails is retried, or dropped with one report, and
never turns into a post at the top level."""

from __future__ import annotations

from datetime import timedelta

from bot.core.delivery import DeliverySettings, DeliveryWorker
from bot.core.models import Delivery, FeedSpec, FeedState, Story
from bot.core.ports import SendResult
from bot.core.routing import Route
from bot.core.store import (
    DeliveryRow,
    IngestBatch,
    NewStoryRow,
    PollOutcome,
    RevisionRow,
    SourceRow,
    StoryRef,
)
from storage.memory import MemoryStorage
from tests.core.fakes import DESTINATIONS, Call, Clock, RecordingSender, Script

DESK = "toy:desk"
OK = PollOutcome(ok=True)


class Desk:
    def __init__(self, script: Script | None = None, *, max_updates: int = 3) -> None:
        self.clock = Clock()
        self.store = MemoryStorage()
        self.toy = RecordingSender("toy", script)
        self.dropped: list[tuple[int, str]] = []
        self.max_updates = max_updates

        async def dropped(delivery: Delivery, reason: str) -> None:
            self.dropped.append((delivery.id, reason))

        self.worker = DeliveryWorker(
            self.store,
            {"toy": self.toy},
            clock=self.clock,
            destinations=DESTINATIONS,
            settings=DeliverySettings(max_updates=max_updates),
            on_thread_dropped=dropped,
        )
        self.feed: FeedState | None = None
        self.story_id = 0

    async def post(self, *, thread: bool = True) -> None:
        spec = FeedSpec("Wire", "https://wire.example/rss", timedelta(minutes=2))
        self.feed = await self.store.add_feed(spec, "test", self.clock())
        story = Story("Wire", "Flood warnings for the Severn", "https://wire.example/1")
        ids = await self.store.apply_ingest(
            self.feed,
            IngestBatch(
                [NewStoryRow(-1, story, True)],
                deliveries=[
                    DeliveryRow(
                        StoryRef.new(-1), Route(DESK, ("Floods",), None, ("flood",), thread=thread)
                    )
                ],
            ),
            OK,
            self.clock(),
        )
        self.story_id = ids[-1]
        await self.worker.drain()

    async def rewrite(self, headline: str) -> None:
        assert self.feed is not None
        story = Story("Wire", headline, "https://wire.example/1")
        batch = IngestBatch(
            revisions=[RevisionRow(self.story_id, story, True, True)],
            max_updates=self.max_updates,
        )
        await self.store.apply_ingest(self.feed, batch, OK, self.clock())
        await self.worker.drain()

    async def carried_by(self, feed: str) -> None:
        assert self.feed is not None
        batch = IngestBatch(sources=[SourceRow(self.story_id, feed)])
        await self.store.apply_ingest(self.feed, batch, OK, self.clock())
        await self.worker.drain()

    def calls(self) -> list[tuple[str, str]]:
        return [(c.kind, c.headlines[0]) for c in self.toy.calls]


async def test_a_rewrite_is_edited_then_replied_under_the_card_with_its_revision() -> None:
    desk = Desk()
    await desk.post()
    await desk.rewrite("Flood warnings extended to the Wye")
    assert desk.calls() == [
        ("send", "Flood warnings for the Severn"),
        ("edit", "Flood warnings extended to the Wye"),
        ("reply", "Flood warnings extended to the Wye"),
    ]
    edit, reply = desk.toy.calls[1:]
    assert reply.message_id == edit.message_id == "toy-msg-1"  # under the card itself
    assert reply.card is not None and reply.card.update and reply.card.revision == 1


async def test_in_edit_mode_a_rewrite_is_an_edit_alone_and_sources_change_nothing() -> None:
    desk = Desk()
    await desk.post(thread=False)
    await desk.rewrite("Flood warnings extended to the Wye")
    await desk.carried_by("AP")
    assert [k for k, _ in desk.calls()] == ["send", "edit"]
    assert desk.toy.calls[1].card is not None and desk.toy.calls[1].card.sources == ()


async def test_a_new_source_is_an_edit_naming_it_without_a_reply_or_an_updated_mark() -> None:
    desk = Desk()
    await desk.post()
    await desk.carried_by("AP")
    await desk.carried_by("BBC")
    assert [k for k, _ in desk.calls()] == ["send", "edit", "edit"]
    cards = [c.card for c in desk.toy.calls[1:]]
    assert [c.sources for c in cards if c] == [("Wire", "AP"), ("Wire", "AP", "BBC")]
    assert not any(c.update for c in cards if c)
    [delivery] = await desk.store.deliveries_for_story(desk.story_id)
    assert delivery.update_count == 0  # not counted toward the update cap


async def test_replies_stop_at_the_update_cap_even_when_a_source_brings_an_edit() -> None:
    desk = Desk(max_updates=1)
    await desk.post()
    await desk.rewrite("Second version of the flood story")
    await desk.rewrite("Third version of the flood story")  # past the cap: no edit at all
    await desk.carried_by("AP")  # an edit, which shows the third version, but no reply
    assert desk.calls() == [
        ("send", "Flood warnings for the Severn"),
        ("edit", "Second version of the flood story"),
        ("reply", "Second version of the flood story"),
        ("edit", "Third version of the flood story"),
    ]


async def test_a_reply_that_fails_for_now_is_retried_with_its_edit() -> None:
    left = [1]

    def script(call: Call) -> SendResult | None:
        if call.kind == "reply" and left[0]:
            left[0] -= 1
            return SendResult.retry("Slack is having trouble (HTTP 503)")
        return None

    desk = Desk(script)
    await desk.post()
    await desk.rewrite("Flood warnings extended to the Wye")
    [delivery] = await desk.store.deliveries_for_story(desk.story_id)
    assert delivery.update_pending and delivery.attempts == 1
    desk.clock.advance(minutes=1)
    await desk.worker.drain()
    assert [k for k, _ in desk.calls()] == ["send", "edit", "reply", "edit", "reply"]
    [delivery] = await desk.store.deliveries_for_story(desk.story_id)
    assert not delivery.update_pending and delivery.update_count == 1
    assert desk.dropped == []


async def test_a_refused_reply_is_reported_once_and_nothing_else_is_posted() -> None:
    def script(call: Call) -> SendResult | None:
        if call.kind == "reply":
            return SendResult.failed("the bot may not create threads there (50013)")
        return None

    desk = Desk(script)
    await desk.post()
    await desk.rewrite("Flood warnings extended to the Wye")
    await desk.rewrite("Flood warnings extended to the Usk")
    assert [k for k, _ in desk.calls()] == ["send", "edit", "reply", "edit", "reply"]
    assert [reason for _, reason in desk.dropped] == [
        "the bot may not create threads there (50013)"
    ] * 2  # the worker reports each; OpsNotices says it once per card
    [delivery] = await desk.store.deliveries_for_story(desk.story_id)
    assert not delivery.update_pending and delivery.update_count == 2


async def test_a_deleted_card_is_not_replied_under() -> None:
    def script(call: Call) -> SendResult | None:
        if call.kind == "edit":
            return SendResult.failed("the message was deleted (10008 Unknown Message)")
        return None

    desk = Desk(script)
    await desk.post()
    await desk.rewrite("Flood warnings extended to the Wye")
    assert [k for k, _ in desk.calls()] == ["send", "edit"]
    assert desk.dropped == [
        (1, "the card cannot be edited any more (the message was deleted (10008 Unknown Message))")
    ]
