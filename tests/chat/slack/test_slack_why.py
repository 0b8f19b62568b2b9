"""`/news why` on Slack, end to end: the real bot, slack_bolt and SQLite against FakeSlack (the
desk and its helpers are those of test_slack_e2e). What the asker reads: what happened to a story
and why, within Slack's block limits, and nothing of channels that are not their workspace's."""

from __future__ import annotations

import pytest

from tests.chat.hostile import HOSTILE_SLACK_LINK
from tests.chat.slack.test_slack_e2e import (
    ADMIN,
    DESK,
    GONE,
    LISTED,
    REPORTER,
    Desk,
    Item,
    link_targets,
    minutes_ago,
    rss,
    story,
)
from tests.fakes.slack_server import FakeSlack, validate_blocks

pytestmark = pytest.mark.timeout(20)

WATCHLISTS = [
    {"name": "Korea", "query": '"Kim Jong Un" AND NOT sport', "channels": [f"slack:{DESK}"]},
    {"name": "Gone", "query": "Seoul", "channels": [f"slack:{GONE}"]},
    {"name": "Console", "query": "Seoul", "channels": ["console:desk"]},  # not Slack's
]


async def why(fake: FakeSlack, text: str, user_id: str = REPORTER) -> str:
    # One answer is expected: no need to wait for late ones.
    reply = await fake.slash_command(f"why {text}", user_id=user_id, quiet=0.01)
    assert reply.ephemeral == [True]
    assert validate_blocks(reply.responses[0]["blocks"]) == []
    return reply.text


async def test_why_names_the_card_the_failing_part_and_a_failed_delivery(
    desk: Desk, fake: FakeSlack
) -> None:
    fake.error_for_channel(GONE, "channel_not_found")
    await desk.start(watchlists=WATCHLISTS)
    await fake.slash_command("subscribe Seoul", user_id=LISTED, quiet=0)  # someone else's
    await desk.publish(story("Kim Jong Un meets Seoul envoy", "1"))

    member = await why(fake, "<https://w.example/1>")  # Slack's markup for a pasted link
    by_words = await why(fake, "Kim Jong Un envoy")
    admin = await why(fake, "Kim Jong Un meets Seoul envoy", user_id=ADMIN)

    assert 'Why: "Kim Jong Un meets Seoul envoy"' in member
    assert "First seen on Wire at " in member
    assert f"Watchlist Korea → slack:{DESK}: card posted" in member
    assert "matched Kim Jong Un" in member
    assert f"Watchlist Gone → slack:{GONE}: the delivery failed: " in member
    assert "the channel does not exist or the bot cannot see it" in member
    # Neither another platform's channel nor another person's direct messages.
    assert "Console" not in member and "console:desk" not in member
    assert LISTED not in member
    assert "Watchlist Console → console:desk: card posted" in admin
    assert f"Subscriptions of slack:{LISTED} → slack:dm:{LISTED}: card posted" in admin
    assert by_words == member  # the headline's words find the same story


async def test_why_a_missed_baseline_and_duplicate_story(
    desk: Desk, fake: FakeSlack, feed_server
) -> None:
    lead = "Pyongyang said the launch was a success, state media reported on Sunday morning."
    desk.items = [
        Item("Kim Jong Un watches missile launch", lead, "https://w.example/b", "b"),
        Item("Kim Jong Un visits a tractor factory", "", "https://w.example/c", "c"),
    ]
    desk.feeds.set("wire.xml", rss(desk.items))
    feed_server.set("agency.xml", rss([]))
    agency = {"name": "Agency", "url": feed_server.url("agency.xml")}
    await desk.start(watchlists=WATCHLISTS[:1], more_feeds=[agency])  # the baseline polls
    await desk.publish(story("Kim Jong Un opens the football season", "2", "A sport story."))
    # Another feed repeats a story of Wire's baseline: owed, it alerts now, once.
    repeat = Item("Kim Jong Un watches missile launch", lead, "https://agency.example/9", "9")
    feed_server.set("agency.xml", rss([repeat]))
    assert desk.bot is not None
    await desk.bot.run_once()
    assert len(fake.messages_in(DESK)) == 1

    baseline = await why(fake, "tractor factory")
    excluded = await why(fake, "https://w.example/2")
    duplicate = await why(fake, "https://agency.example/9")

    held = "it was first seen in the baseline poll of Wire"
    assert 'Why: "Kim Jong Un visits a tractor factory"' in baseline
    assert f"Not alerted: {held}" in baseline
    assert f"Watchlist Korea: matches, but no card: {held}" in baseline
    assert (
        'Watchlist Korea: did not match: "sport" is in the story, and the query excludes it'
        in excluded
    )
    assert "Why: that link (Agency, " in duplicate
    assert 'is a duplicate of a story first seen on Wire: "Kim Jong Un watches missile launch"' in (
        duplicate
    )
    assert "Also seen on Agency at " in duplicate
    assert f"Not alerted when first seen: {held}" in duplicate
    assert "alerted later, when another feed listed it" in duplicate
    assert f"Watchlist Korea → slack:{DESK}: card posted" in duplicate


async def test_why_an_unknown_link_and_a_hostile_headline(desk: Desk, fake: FakeSlack) -> None:
    await desk.start(watchlists=WATCHLISTS[:1])
    title = f"Kim Jong Un <!channel> {HOSTILE_SLACK_LINK}"
    await desk.publish(Item(title, "", "https://w.example/h", "h", minutes_ago(2)))

    unknown = await fake.slash_command("why https://elsewhere.example/x", user_id=REPORTER, quiet=0)
    hostile = await fake.slash_command("why Kim Jong Un channel", user_id=REPORTER, quiet=0)

    assert unknown.text == "No stored story has that link."
    assert "Kim Jong Un" in hostile.text
    assert "<!channel>" not in str(hostile.responses)
    # The only link Slack would act on is the story's own.
    assert set(link_targets(hostile.responses)) == {"https://w.example/h"}
