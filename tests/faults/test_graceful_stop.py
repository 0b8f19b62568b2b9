"""SIGTERM lets the send in flight finish and be recorded, closes the database, and exits within
10 seconds: a card Discord accepted is never left 'pending' by a clean stop."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.faults.process import BotProcess, write_config
from tests.feedgen import Item, minutes_ago, rss

CHANNEL = 1_400_000_000_000_000_001
pytestmark = pytest.mark.timeout(60)


async def test_sigterm_finishes_the_send_in_flight_and_exits(tmp_path, feed_server):
    feed_server.set("wire.xml", rss([]))
    async with FakeDiscord(text_channel_ids=(CHANNEL,)) as fake:
        platform = f'[discord]\napi_base = "{fake.api_base}"\ngateway_url = "{fake.gateway_url}"'
        config = write_config(tmp_path, feed_server.url("wire.xml"), f"discord:{CHANNEL}", platform)
        bot = BotProcess(config, {"DISCORD_TOKEN": fake.token})
        await bot.start()
        await bot.wait_for(lambda: feed_server.count("wire.xml") >= 2, "the baseline poll")
        fake.set_down(True, mode="hang")  # Discord holds the next message POST
        feed_server.set(
            "wire.xml",
            rss([Item("Pyongyang story", "A lead.", "https://w.example/1", "1", minutes_ago(1))]),
        )
        await bot.wait_for(lambda: fake.hanging > 0, "a send in flight")

        stopping = asyncio.create_task(bot.stop())
        await asyncio.sleep(1)
        assert bot.running, "the bot must wait for the send in flight"
        fake.set_down(False)  # Discord answers the held request
        assert await stopping == 0, bot.log

    assert [m.embeds[0]["title"] for m in fake.messages_in(CHANNEL)] == ["Pyongyang story"]
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("SELECT status, message_id IS NOT NULL FROM deliveries").fetchall() == [
            ("sent", 1)
        ]
