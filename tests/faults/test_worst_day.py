"""Issue 11's acceptance, all at once: a hostile subscription, hostile feeds and a foreign
server's admin do their worst to a running bot; a matching story from a healthy feed still
reaches the desk's channel within one poll interval plus a few seconds, and /status says what
was refused or skipped.

The real NewsBot runs as it does in production (scheduler, delivery worker, Discord gateway)
against the fake Discord and a local feed server."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot.app import NewsBot
from bot.chat.discord import DiscordPlatform
from config.settings import settings_from_dict
from tests.fakes.discord_server import FakeDiscord, point_discord_at
from tests.feedgen import Item, minutes_ago, rss

pytestmark = pytest.mark.timeout(120)

DESK_CHANNEL = 1_400_000_000_000_000_001
OPS_CHANNEL = 1_400_000_000_000_000_003
FOREIGN_GUILD = 1_300_000_000_000_000_099
FOREIGN_CHANNEL = 1_400_000_000_000_000_099
EDITOR = 2_000_000_000_000_000_002
STRANGER = 2_000_000_000_000_000_077
MANAGE_GUILD = 1 << 5
INTERVAL = 2  # seconds between polls of each feed
HOSTILE_QUERY = "zzz " + "-" * 975 + "a"


def many_categories(count: int) -> bytes:
    """One item with `count` categories: feedparser's tag handling is quadratic in them."""
    when = format_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True)
    tags = "".join(f"<category>tag{i}</category>" for i in range(count))
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Tags</title>'
        "<link>https://tags.example/</link><item><title>Tagged</title>"
        f"<link>https://tags.example/1</link><guid>t1</guid><pubDate>{when}</pubDate>"
        f"{tags}</item></channel></rss>"
    ).encode()


def long_author(length: int) -> bytes:
    """One item whose author is `length` characters: feedparser's e-mail regex backtracks."""
    when = format_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True)
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Author</title>'
        "<link>https://author.example/</link><item><title>Authored</title>"
        f"<link>https://author.example/1</link><guid>a1</guid><pubDate>{when}</pubDate>"
        f"<author>{'a' * length}@</author></item></channel></rss>"
    ).encode()


async def test_a_healthy_story_gets_through_whatever_the_others_do(tmp_path, feed_server):
    feed_server.set("wire.xml", rss([]))
    feed_server.set("tags.xml", many_categories(100_000))
    feed_server.set("author.xml", long_author(50_000))
    fake = FakeDiscord(text_channel_ids=(DESK_CHANNEL, OPS_CHANNEL))
    # A public bot can be added to anyone's server: this one joins after start-up.
    fake.add_guild(
        FOREIGN_GUILD, name="Elsewhere", text_channel_ids=(FOREIGN_CHANNEL,), bot_member=False
    )
    await fake.start()
    try:
        with point_discord_at(fake):
            await _worst_day(tmp_path, feed_server, fake)
    finally:
        await fake.close()


async def _worst_day(tmp_path, feed_server, fake: FakeDiscord) -> None:
    raw = {
        "storage": {"path": str(tmp_path / "bot.db")},
        "http": {"enabled": False},
        "fetch": {"allow_networks": ["127.0.0.1/32"], "min_interval": f"{INTERVAL}s"},
        "feeds": [
            {"name": "Wire", "url": feed_server.url("wire.xml"), "interval": f"{INTERVAL}s"},
            {"name": "Tags", "url": feed_server.url("tags.xml"), "interval": f"{INTERVAL}s"},
            {"name": "Author", "url": feed_server.url("author.xml"), "interval": f"{INTERVAL}s"},
        ],
        "watchlists": [
            {"name": "Floods", "query": "flood", "channels": [f"discord:{DESK_CHANNEL}"]}
        ],
        "discord": {
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
            "ops_channel": f"discord:{OPS_CHANNEL}",
        },
    }
    settings = settings_from_dict(raw, {"DISCORD_TOKEN": fake.token})
    platform = DiscordPlatform(settings, guild_ready_timeout=0.05, defer_after=0.5)
    bot = NewsBot(settings, stdout=io.StringIO(), platforms=[platform])
    await bot.open()
    # A subscription stored before the query limits existed: it used to crash every poll.
    assert bot.storage is not None
    await bot.storage.add_subscription("discord:42", HOSTILE_QUERY, datetime.now(UTC))
    stop = asyncio.Event()
    running = asyncio.create_task(bot.run_forever(stop))
    try:
        await fake.wait_until(lambda: platform.connected, what="the bot connected", timeout=20)
        await fake.wait_until(
            lambda: feed_server.count("wire.xml") >= 1, what="the baseline poll", timeout=20
        )

        await fake.join_guild(FOREIGN_GUILD)
        # The foreign server's admin tries to take over, and a reporter tries the hostile query.
        taken = await fake.invoke(
            "watchlist add",
            {"name": "Theirs", "query": "flood", "channel": FOREIGN_CHANNEL},
            user_id=STRANGER,
            guild_id=FOREIGN_GUILD,
            channel_id=FOREIGN_CHANNEL,
            permissions=MANAGE_GUILD,
        )
        assert "Theirs" not in (taken.content or "")
        subscribed = await fake.invoke(
            "subscribe", {"query": HOSTILE_QUERY}, user_id=EDITOR, guild_id=fake.guild_id
        )
        assert "Nested too deeply" in (subscribed.content or "")

        # The story: published once the hostile feeds have had their turn at the parse workers.
        await fake.wait_until(
            lambda: feed_server.count("tags.xml") >= 1 and feed_server.count("author.xml") >= 1,
            what="the hostile feeds polled",
            timeout=30,
        )
        feed_server.set(
            "wire.xml",
            rss(
                [
                    Item(
                        "Flood warning on the Severn",
                        "Rivers rise.",
                        "https://w.example/1",
                        "1",
                        minutes_ago(1),
                    )
                ]
            ),
        )
        published = time.monotonic()
        await fake.wait_until(
            lambda: bool(fake.messages_in(DESK_CHANNEL)),
            what="the card from the healthy feed",
            timeout=INTERVAL + 15,  # one poll interval plus a few seconds, on a loaded machine
        )
        waited = time.monotonic() - published
        [card] = fake.messages_in(DESK_CHANNEL)
        assert card.embeds[0]["title"] == "Flood warning on the Severn"
        assert fake.messages_in(FOREIGN_CHANNEL) == []
        assert [w.name for w in await bot.storage.list_watchlists()] == ["Floods"]

        status = await fake.invoke(
            "status", {}, user_id=EDITOR, guild_id=fake.guild_id, permissions=MANAGE_GUILD
        )
        text = status.content or ""
        assert "Skipped queries: 1" in text, text
        assert "Skipped: subscription of discord:42" in text
        notices = [m.content or "" for m in fake.messages_in(OPS_CHANNEL)]
        assert sum("was skipped" in n for n in notices) == 1, notices
        print(f"card arrived {waited:.1f} s after publication (interval {INTERVAL} s)")
    finally:
        stop.set()
        await running
        await bot.close()
