"""A chat outage: Discord answers 503 for a while. Cards stay pending, are retried with backoff,
survive a restart during the outage, and all arrive once Discord is back; nothing is dropped
because it waited. The bot's clock is moved forward instead of sleeping through the backoff."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.app import NewsBot
from bot.chat.discord import DiscordPlatform
from bot.core.models import DeliveryStatus
from config.settings import settings_from_dict
from tests.fakes.discord_server import FakeDiscord, point_discord_at
from tests.feedgen import Item, rss

CHANNEL = 1_400_000_000_000_000_001
pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def bot_factory(
    tmp_path, fake: FakeDiscord, feed_url: str, clock: Clock, **alerts: int
) -> Callable[[], NewsBot]:
    """Makes the same bot again and again (a restart): one feed, one watchlist ("Pyongyang")
    posting to the fake Discord's channel, the test's clock."""
    settings = settings_from_dict(
        {
            "storage": {"path": str(tmp_path / "bot.db")},
            "http": {"enabled": False},
            "alerts": alerts,
            "discord": {"api_base": fake.api_base, "gateway_url": fake.gateway_url},
            "feeds": [{"name": "Wire", "url": feed_url}],
            "watchlists": [
                {"name": "NK", "query": "Pyongyang", "channels": [f"discord:{CHANNEL}"]}
            ],
        },
        {"DISCORD_TOKEN": fake.token},
    )

    def bot() -> NewsBot:
        platform = DiscordPlatform(settings, guild_ready_timeout=0.05)
        return NewsBot(settings, stdout=io.StringIO(), clock=clock, platforms=[platform])

    return bot


async def test_cards_wait_out_an_outage_and_a_restart_then_arrive_once(tmp_path, feed_server):
    clock = Clock()
    feed_server.set("wire.xml", rss([]))
    async with FakeDiscord(text_channel_ids=(CHANNEL,)) as fake:
        with point_discord_at(fake):
            bot = bot_factory(tmp_path, fake, feed_server.url("wire.xml"), clock)

            async with bot() as first:
                await first.run_once()  # baseline
                feed_server.set(
                    "wire.xml",
                    rss(
                        [
                            Item(
                                f"Pyongyang story {n}",
                                f"Lead {n}.",
                                f"https://w.example/{n}",
                                f"g{n}",
                                clock.now,
                            )
                            for n in range(1, 6)
                        ]
                    ),
                )
                fake.set_down(True)
                await first.run_once()
                counts = await first.storage.delivery_counts()
                assert counts["pending"] == 5 and counts["sent"] == 0
                clock.advance(minutes=10)
                await first.run_once()  # retried, still down
            assert fake.messages_in(CHANNEL) == []
            assert fake.statuses("POST").count(503) >= 2

            # Restart while Discord is still down: the outbox is in the database.
            async with bot() as second:
                clock.advance(minutes=10)
                await second.run_once()
                assert (await second.storage.delivery_counts())["pending"] == 5
                fake.set_down(False)
                clock.advance(minutes=10)
                await second.run_once()
                counts = await second.storage.delivery_counts()
                stories = await second.storage.recent_stories(clock.now - timedelta(days=1))
                statuses = {
                    d.status
                    for s in stories
                    for d in await second.storage.deliveries_for_story(s.id)
                }
    assert counts["pending"] == 0 and counts["sent"] == 5 and counts["failed"] == 0
    assert statuses == {DeliveryStatus.SENT}
    titles = sorted(m.embeds[0]["title"] for m in fake.messages_in(CHANNEL))
    assert titles == [f"Pyongyang story {n}" for n in range(1, 6)]


async def test_a_digest_interrupted_by_a_crash_is_resent_as_the_same_digest(tmp_path, feed_server):
    """A burst became a digest; the bot died after Discord took the digest but before it was
    recorded. Ten minutes later the burst window is over, so a fresh grouping would post some of
    those cards one by one: instead the recorded group goes out again, with the same nonce, and
    Discord keeps the one message it has."""
    import sqlite3

    clock = Clock()
    feed_server.set("wire.xml", rss([]))
    async with FakeDiscord(text_channel_ids=(CHANNEL,)) as fake:
        with point_discord_at(fake):
            bot = bot_factory(tmp_path, fake, feed_server.url("wire.xml"), clock, burst_limit=2)

            async with bot() as first:
                await first.run_once()
                feed_server.set(
                    "wire.xml",
                    rss(
                        [
                            Item(
                                f"Pyongyang story {n}",
                                f"Lead {n}.",
                                f"https://w.example/{n}",
                                f"g{n}",
                                clock.now,
                            )
                            for n in range(1, 7)
                        ]
                    ),
                )
                await first.run_once()
            assert len(fake.messages_in(CHANNEL)) == 3  # two cards, then a digest of four
            with sqlite3.connect(tmp_path / "bot.db") as db:
                # The crash window: the digest was posted, its cards not yet marked sent.
                rows = db.execute(
                    "UPDATE deliveries SET status = 'pending', message_id = NULL, sent_at = NULL "
                    "WHERE digest = 1"
                ).rowcount
            assert rows == 4

            clock.advance(minutes=10)
            async with bot() as second:
                await second.run_once()
                counts = await second.storage.delivery_counts()
    assert counts["sent"] == 6 and counts["pending"] == 0
    assert len(fake.messages_in(CHANNEL)) == 3
