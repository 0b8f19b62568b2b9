"""Quiet hours and digests for people, end to end on Discord: the real bot, discord.py and SQLite
against the fake Discord and a local feed server, with the bot's clock moved by the test.

A reporter sets quiet hours with /subscribe; stories owed to them then wait and arrive as one
digest when the quiet hours end (a restart in between changes nothing); an urgent story comes
at once when they allow it and waits when they do not; /subscriptions shows the settings; a bad
setting is refused and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.chat.discord import test_discord_e2e as discord_e2e
from tests.chat.discord.test_discord_e2e import CH_DESK, READER, Desk, Item, only
from tests.fakes.discord_server import FakeDiscord

fake = discord_e2e.fake
desk_factory = discord_e2e.desk_factory
desk = discord_e2e.desk


def quiet_now() -> str:
    """Quiet hours (UTC) from an hour ago to an hour ahead: the bot is in them until its clock
    is moved two hours on."""
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


async def test_stories_in_quiet_hours_arrive_as_one_digest_when_they_end(
    desk: Desk, fake: FakeDiscord
) -> None:
    quiet = quiet_now()
    reply = await desk.invoke("subscribe", {"query": "Severn", "quiet": quiet, "timezone": "UTC"})
    assert "Subscribed. Stories matching Severn" in (reply.content or "")
    assert f"quiet hours {quiet} · mode instant · urgent stories come at once" in (
        reply.content or ""
    )

    await desk.publish(
        Item("Severn bore draws crowds", "q1"),
        Item("Severn ferry suspended", "q2"),
        Item("Severn bridge reopens", "q3"),
        Item("Flood barrier raised on the Severn", "q4"),  # also the desk's watchlist
    )
    assert fake.dms_to(READER) == []
    # The desk's channel takes no notice of a person's quiet hours.
    assert only(fake.messages_in(CH_DESK)).embeds[0]["title"] == (
        "Flood barrier raised on the Severn"
    )

    listed = await desk.invoke("subscriptions")
    assert "• Severn" in (listed.content or "")
    assert f"time zone UTC · quiet hours {quiet}" in (listed.content or "")

    await desk.restart()  # in the quiet hours: nothing is lost, nothing goes early
    assert fake.dms_to(READER) == []

    desk.clock.offset = timedelta(hours=2)  # past the end of the quiet hours
    assert desk.bot is not None
    await desk.bot.run_once()
    await desk.bot.run_once()

    digest = only(fake.dms_to(READER)).embeds[0]
    assert digest["title"] == "4 stories from your quiet hours"
    for guid in ("q1", "q2", "q3", "q4"):
        assert f"](https://wire.example/{guid})" in digest["description"]
    assert digest["footer"]["text"] == "Your subscription"


async def test_an_urgent_story_comes_through_the_quiet_hours_only_when_allowed(
    desk: Desk, fake: FakeDiscord
) -> None:
    await desk.invoke("subscribe", {"query": "Severn", "quiet": quiet_now()})

    await desk.publish(Item("Severn ferry late", "u1"))
    assert fake.dms_to(READER) == []
    # Not kept back by the story already waiting.
    await desk.publish(Item("BREAKING: Severn dam bursts", "u2"))
    assert [m.embeds[0]["title"] for m in fake.dms_to(READER)] == ["BREAKING: Severn dam bursts"]

    reply = await desk.invoke("subscribe", {"urgent": "no"})
    assert "urgent stories wait too" in (reply.content or "")
    await desk.publish(Item("URGENT: Severn levee fails", "u3"))
    assert len(fake.dms_to(READER)) == 1

    desk.clock.offset = timedelta(hours=2)
    assert desk.bot is not None
    await desk.bot.run_once()
    later = fake.dms_to(READER)[1:]
    digest = only(later).embeds[0]
    assert digest["title"] == "2 stories from your quiet hours"
    assert "Severn ferry late" in digest["description"]
    assert "URGENT: Severn levee fails" in digest["description"]


async def test_bad_settings_get_a_clear_reply_and_change_nothing(
    desk: Desk, fake: FakeDiscord
) -> None:
    await desk.invoke("subscribe", {"quiet": "22:00-07:00", "timezone": "Europe/London"})
    before = (await desk.invoke("subscriptions")).content

    for options, problem in [
        ({"timezone": "Mars/Olympus"}, "'Mars/Olympus' is not a time zone I know."),
        ({"quiet": "25:00-07:00"}, "'25:00' is not a time of day for quiet hours"),
        ({"query": "Severn", "mode": "weekly"}, "Unknown mode 'weekly': use instant, hourly"),
    ]:
        reply = await desk.invoke("subscribe", options)
        assert reply.ephemeral
        assert problem in (reply.content or "")
        assert "Nothing was changed." in (reply.content or "")

    assert (await desk.invoke("subscriptions")).content == before
    assert "time zone Europe/London · quiet hours 22:00-07:00" in (before or "")
