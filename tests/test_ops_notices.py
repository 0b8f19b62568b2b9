"""What the ops channels are told, and how often: OpsNotices on its own, through the console
platform's real sender and a recording one (no bot, no store, no network)."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from bot.chat.console import ConsoleSender
from bot.core.cards import Card, Digest
from bot.core.models import Delivery, DeliveryStatus, FeedState, Origin
from bot.core.pipeline import PollReport, PollStatus
from bot.core.ports import SendResult
from bot.core.routing import SkippedQuery
from bot.ops import OpsNotices

OPS = "toy:ops"


class RecordingSender:
    """A platform's sender that keeps the notices it is given, or refuses them."""

    platform = "toy"

    def __init__(self, refuse: str | None = None) -> None:
        self.notices: list[tuple[str, str]] = []
        self.refuse = refuse

    async def send(self, card: Card) -> SendResult:
        raise AssertionError("ops notices never send cards")

    async def edit(self, card: Card, message_id: str) -> SendResult:
        raise AssertionError("ops notices never edit cards")

    async def reply(self, card: Card, message_id: str) -> SendResult:
        raise AssertionError("ops notices never reply under cards")

    async def send_digest(self, digest: Digest) -> SendResult:
        raise AssertionError("ops notices never send digests")

    async def notify(self, target: str, text: str) -> SendResult:
        if self.refuse is not None:
            return SendResult.failed(self.refuse)
        self.notices.append((target, text))
        return SendResult.sent(f"notice-{len(self.notices)}")

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.notices]


def feed(failures: int = 0) -> FeedState:
    """The feed as it was before the poll being reported."""
    return FeedState(
        id=1,
        name="Wire",
        url="https://w.example/rss",
        interval=timedelta(minutes=5),
        origin=Origin.CONFIG,
        failures=failures,
    )


def delivery(target: str) -> Delivery:
    return Delivery(
        id=7,
        story_id=3,
        target=target,
        watchlists=("Floods",),
        subscriber=None,
        matched=("flood",),
        status=DeliveryStatus.PENDING,
    )


def failed(error: str = "HTTP 500 Internal Server Error") -> PollReport:
    return PollReport("Wire", PollStatus.ERROR, error=error)


RECOVERED = PollReport("Wire", PollStatus.RECOVERED)


@pytest.fixture
def toy() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def notices(toy: RecordingSender) -> OpsNotices:
    return OpsNotices([OPS], {"toy": toy}, failing_after=3)


async def test_a_failing_feed_is_announced_on_the_poll_that_reaches_the_threshold_only(
    notices: OpsNotices, toy: RecordingSender
) -> None:
    for failures in range(1, 8):
        await notices.feed_health(feed(failures - 1), failed(), failures)

    assert toy.notices == [
        (
            OPS,
            "Feed 'Wire' is failing: HTTP 500 Internal Server Error (3 polls in a row). "
            "It keeps being retried with backoff.",
        )
    ]


async def test_a_recovery_is_announced_once_and_only_after_a_failure_was(
    notices: OpsNotices, toy: RecordingSender
) -> None:
    # Two failures, under the threshold: nobody was told, so nobody hears it is over.
    await notices.feed_health(feed(2), RECOVERED, 0)
    assert toy.notices == []

    await notices.feed_health(feed(5), RECOVERED, 0)
    assert toy.texts == ["Feed 'Wire' recovered after 5 failed polls."]


async def test_a_feed_that_fails_again_after_recovering_is_announced_again(
    notices: OpsNotices, toy: RecordingSender
) -> None:
    for round_ in range(2):
        for failures in range(1, 5):
            await notices.feed_health(feed(failures - 1), failed(f"reason {round_}"), failures)
        await notices.feed_health(feed(4), RECOVERED, 0)

    assert [text.split(":")[0] for text in toy.texts] == [
        "Feed 'Wire' is failing",
        "Feed 'Wire' recovered after 4 failed polls.",
        "Feed 'Wire' is failing",
        "Feed 'Wire' recovered after 4 failed polls.",
    ]
    assert "reason 1" in toy.texts[2]


async def test_a_destination_that_refuses_cards_is_reported_once_until_it_takes_one_again(
    notices: OpsNotices, toy: RecordingSender
) -> None:
    gone, closed = delivery("toy:room-1"), delivery("toy:dm:rita")
    for _ in range(3):
        await notices.delivery_failed(gone, "the channel is gone")
    await notices.delivery_failed(closed, "their DMs are closed")
    notices.delivered(gone)  # someone fixed the channel
    await notices.delivery_failed(gone, "no permission")
    await notices.delivery_failed(closed, "their DMs are closed")

    assert toy.texts == [
        "Cannot deliver to toy:room-1: the channel is gone. Cards for it are marked failed; "
        "fix the permission or the watchlist's channel.",
        "Cannot deliver to toy:dm:rita: their DMs are closed. Cards for it are marked failed; "
        "fix the permission or the watchlist's channel.",
        "Cannot deliver to toy:room-1: no permission. Cards for it are marked failed; "
        "fix the permission or the watchlist's channel.",
    ]


async def test_each_skipped_query_is_reported_once_and_again_when_its_text_changes(
    notices: OpsNotices, toy: RecordingSender
) -> None:
    nested = SkippedQuery(("s", 4), "subscription of toy:rita", "((((a))))", "Nested too deeply")
    watchlist = SkippedQuery(("w", 1), "watchlist 'Putin'", "Putin NEAR", "NEAR needs a term")
    await notices.queries_skipped([nested, watchlist])
    await notices.queries_skipped([nested, watchlist])  # the next book leaves out the same
    await notices.queries_skipped([replace(nested, query="(((((a)))))")])

    assert toy.texts == [
        "The subscription of toy:rita was skipped and alerts nobody: Nested too deeply. "
        "Query: ((((a)))). Every other watchlist and subscription still alerts; "
        "edit or remove this one.",
        "The watchlist 'Putin' was skipped and alerts nobody: NEAR needs a term. "
        "Query: Putin NEAR. Every other watchlist and subscription still alerts; "
        "edit or remove this one.",
        "The subscription of toy:rita was skipped and alerts nobody: Nested too deeply. "
        "Query: (((((a))))). Every other watchlist and subscription still alerts; "
        "edit or remove this one.",
    ]


async def test_a_skipped_query_is_quoted_at_most_200_characters(
    notices: OpsNotices, toy: RecordingSender
) -> None:
    long = SkippedQuery(("w", 2), "watchlist 'Long'", "x" * 1000, "too long")
    await notices.queries_skipped([long])

    [text] = toy.texts
    assert f"Query: {'x' * 200}. Every" in text


async def test_every_ops_channel_hears_each_notice() -> None:
    toy, other = RecordingSender(), RecordingSender()
    other.platform = "other"
    notices = OpsNotices(["toy:ops", "other:ops"], {"toy": toy, "other": other}, failing_after=1)

    await notices.feed_health(feed(0), failed(), 1)

    assert [target for target, _ in toy.notices + other.notices] == ["toy:ops", "other:ops"]


async def test_the_console_platform_prints_notices_as_text_or_json_lines() -> None:
    text, lines = io.StringIO(), io.StringIO()
    for fmt, stream in (("text", text), ("jsonl", lines)):
        notices = OpsNotices(
            ["console:ops"], {"console": ConsoleSender(fmt, stream)}, failing_after=1
        )
        await notices.feed_health(feed(0), failed("HTTP 404 Not Found"), 1)

    notice = "Feed 'Wire' is failing: HTTP 404 Not Found (1 polls in a row). "
    notice += "It keeps being retried with backoff."
    assert text.getvalue() == f"!! console:ops: {notice}\n"
    assert json.loads(lines.getvalue()) == {"channel": "console:ops", "notice": notice}


async def test_with_no_ops_channel_a_notice_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    notices = OpsNotices([], {}, failing_after=1)
    caplog.set_level(logging.WARNING)

    await notices.delivery_failed(delivery("toy:room-1"), "the channel is gone")

    assert [r.getMessage() for r in caplog.records] == [
        "ops notice: Cannot deliver to toy:room-1: the channel is gone. Cards for it are "
        "marked failed; fix the permission or the watchlist's channel."
    ]


async def test_a_notice_that_cannot_be_posted_is_logged_and_the_others_still_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusing, toy = RecordingSender(refuse="missing_scope"), RecordingSender()
    refusing.platform = "slackish"
    notices = OpsNotices(
        ["slackish:C1", "nowhere:ops", OPS],
        {"slackish": refusing, "toy": toy},
        failing_after=1,
    )
    caplog.set_level(logging.WARNING)

    await notices.notify("Feed 'Wire' recovered after 1 failed polls.")

    assert toy.notices == [(OPS, "Feed 'Wire' recovered after 1 failed polls.")]
    assert [r.getMessage() for r in caplog.records] == [
        "could not post ops notice to slackish:C1: missing_scope",
        "ops notice (no nowhere connection): Feed 'Wire' recovered after 1 failed polls.",
    ]
